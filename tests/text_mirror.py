"""A tiny GLUE in the hub's layout (``datasets/nyu-mll/glue/<config>/<split>-*.parquet``).

Rows are seeded sentences over a small vocabulary with real GLUE column names and label
types, so the suites' real reading, tokenising and scoring code runs on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.text.glue import data as glue

_VOCABULARY = (
    "the a film movie story cat dog man woman city river good bad great poor old new small "
    "large quick slow happy sad bright dark red blue plays runs sees likes makes takes "
    "was is not very really quite about over under with without "
)
WORDS = _VOCABULARY.split()


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))).capitalize() + "."


def write_glue(
    mirror: Path, tasks: list[str], rows: int = 24, seed: int = 0, test_rows: int | None = None
) -> Path:
    """Write ``rows`` train and ``test_rows`` (default ``rows``) scored rows per task."""
    import pandas as pd

    root = Path(mirror) / "datasets" / glue.DATASET
    rng = np.random.default_rng(seed)
    for name in tasks:
        task = glue.TASKS[name]
        for split, count in (("train", rows), (task.test_split, test_rows or rows)):
            columns = {field: [_sentence(rng) for _ in range(count)] for field in task.fields}
            if task.is_regression:
                columns["label"] = np.round(rng.uniform(0, 5, size=count), 3).astype(np.float32)
            else:
                columns["label"] = rng.integers(0, task.num_labels, size=count).astype(np.int64)
            columns["idx"] = np.arange(count, dtype=np.int32)
            (root / name).mkdir(parents=True, exist_ok=True)
            pd.DataFrame(columns).to_parquet(root / name / f"{split}-00000-of-00001.parquet")
    return root
