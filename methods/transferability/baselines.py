"""The reference points every transferability table shows: random, source accuracy, size.

They live in one file because each is one line of arithmetic over the inputs; a trivial
baseline (the source's own ImageNet top-1) reaches a mean τ_w of about 0.65 on SFDA's
group-1 zoo, which any estimator has to beat to be worth its cost.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator


def _fact(inputs: TargetInputs, name: str) -> float:
    if name not in inputs.source_facts:
        raise HarnessError(
            f"this zoo does not record the sources' {name}; the source_{name} baseline "
            "runs only where it is known"
        )
    return float(inputs.source_facts[name])


@register_method(
    "random_ranking",
    family="transferability",
    reference="https://arxiv.org/abs/2207.03036",
    needs=("zoo",),
)
@estimator("source_facts")  # reads nothing: no features are extracted for it
def random_ranking(inputs: TargetInputs, *, seed: int = 0) -> float:
    """Random: a score drawn from the seed alone (expected τ_w 0), the floor of every table."""
    return float(np.random.default_rng(seed).random())


@register_method(
    "source_accuracy",
    family="transferability",
    reference="https://arxiv.org/abs/1805.08974",
    needs=("zoo",),
)
@estimator("source_facts")
def source_accuracy(inputs: TargetInputs, *, seed: int = 0) -> float:
    """Source accuracy: the source's own upstream accuracy (ImageNet top-1), target-blind."""
    return _fact(inputs, "accuracy")


@register_method(
    "source_size",
    family="transferability",
    reference="https://arxiv.org/abs/1805.08974",
    needs=("zoo",),
)
@estimator("source_facts")
def source_size(inputs: TargetInputs, *, seed: int = 0) -> float:
    """Source size: the source's parameter count (bigger transfers better, if anything)."""
    return _fact(inputs, "parameters")
