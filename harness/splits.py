"""The fixed held-out part of a train split that methods select hyperparameters on.

Suites whose scored split is the benchmark's validation split (GLUE) or its test split
(the CLIP suites) carve ``validation`` out of train with one fixed seed, so selection never
sees the scored split and the carve is the same for every method and run.
"""

from __future__ import annotations

import numpy as np

VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 42


def validation_indices(count: int, seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices: a fixed-seed 10% of train is validation."""
    order = np.random.default_rng(seed).permutation(count)
    size = max(1, int(round(VALIDATION_FRACTION * count))) if count > 1 else 0
    return np.sort(order[size:]), np.sort(order[:size])
