"""GLUE as FusionBench's language suites use it: tasks, fields, splits, files.

The data is the hub dataset ``nyu-mll/glue`` (one parquet file per config and split:
``<config>/<split>-00000-of-00001.parquet``), resolved like every hub artifact (hub or
``--mirror DIR/datasets/nyu-mll/glue``) and read with pandas, so the mirror and the hub
share one path. GLUE's test labels are hidden, so the scored split is ``validation``
(``validation_matched`` for mnli); hyperparameters are chosen on a fixed held-out 10% of
train (:mod:`harness.splits`), never on the scored split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ArtifactNotFoundError, HarnessError
from harness.splits import validation_indices

DATASET = "nyu-mll/glue"

Text = str | tuple[str, str]


@dataclass(frozen=True)
class GlueTask:
    """One GLUE config: its text fields, label count (1: a regression score), scored split."""

    name: str
    fields: tuple[str, ...]
    num_labels: int
    test_split: str = "validation"
    train_split: str = "train"

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in [
        GlueTask("cola", ("sentence",), 2),
        GlueTask("mnli", ("premise", "hypothesis"), 3, test_split="validation_matched"),
        GlueTask("mrpc", ("sentence1", "sentence2"), 2),
        GlueTask("qnli", ("question", "sentence"), 2),
        GlueTask("qqp", ("question1", "question2"), 2),
        GlueTask("rte", ("sentence1", "sentence2"), 2),
        GlueTask("sst2", ("sentence",), 2),
        GlueTask("stsb", ("sentence1", "sentence2"), 1),
    ]
}


def hub_split(task: GlueTask, split: str) -> str:
    """The hub split behind a suite split: test → validation(_matched), else train."""
    if split == "test":
        return task.test_split
    if split in ("train", "validation"):
        return task.train_split
    raise ValueError(f"unknown split {split!r}; use train, validation or test")


def allow_patterns(tasks: list[str]) -> tuple[str, ...]:
    """The files of ``tasks`` in the hub dataset (for downloads and fetch commands)."""
    return tuple(f"{name}/*" for name in tasks)


def split_files(root: Path, task: GlueTask, split: str) -> list[Path]:
    return sorted((Path(root) / task.name).glob(f"{split}-*.parquet"))


def check_files(root: Path, tasks: list[str], splits: tuple[str, ...] = ("test", "train")) -> None:
    """Fail in one line, naming every missing config/split, before anything loads."""
    missing = [
        f"{name}/{hub_split(TASKS[name], split)}"
        for name in tasks
        for split in splits
        if not split_files(root, TASKS[name], hub_split(TASKS[name], split))
    ]
    if missing:
        includes = " ".join(
            f"--include '{name}/*'"
            for name in dict.fromkeys(entry.split("/")[0] for entry in missing)
        )
        raise ArtifactNotFoundError(
            f"{DATASET} at {root} lacks {', '.join(missing)} (parquet files); fetch them with "
            f"`hf download {DATASET} --repo-type dataset {includes} --local-dir {root}`"
        )


def load_rows(root: Path, task: GlueTask, split: str) -> tuple[list[Text], np.ndarray]:
    """(texts, labels) of a suite split, in the dataset's row order.

    ``train`` and ``validation`` are the 90%/10% carve of GLUE's train split; ``test`` is
    GLUE's validation split. Texts are strings, or (first, second) pairs for pair tasks.
    """
    import pandas as pd

    name = hub_split(task, split)
    files = split_files(root, task, name)
    if not files:
        check_files(root, [task.name], (split,))
    try:
        frame = pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise HarnessError(
            f"{DATASET} {task.name}/{name} at {root} is unreadable "
            f"({type(error).__name__}); download it again"
        ) from None
    absent = [column for column in (*task.fields, "label") if column not in frame.columns]
    if absent:
        raise HarnessError(
            f"{DATASET} {task.name}/{name} at {root} has no column {absent[0]!r} "
            f"(columns: {', '.join(frame.columns)}); it is not GLUE's {task.name}"
        )
    if len(task.fields) == 1:
        texts: list[Text] = [str(text) for text in frame[task.fields[0]]]
    else:
        texts = [(str(a), str(b)) for a, b in zip(frame[task.fields[0]], frame[task.fields[1]])]
    dtype = np.float32 if task.is_regression else np.int64
    labels = frame["label"].to_numpy().astype(dtype)
    if split != "test":
        train, validation = validation_indices(len(texts))
        keep = train if split == "train" else validation
        texts, labels = [texts[i] for i in keep], labels[keep]
    return texts, labels
