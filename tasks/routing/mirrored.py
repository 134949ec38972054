"""What the mirror-read outcome suites share: resolve the release, parse it into rows,
embed the query texts (all-MiniLM-L6-v2, offline), and name what was used.

A release's rows are parsed by the suite (:meth:`MirroredOutcomes.read`) into
:class:`Rows`; splits the release does not define are drawn here, per task, with one
fixed seed (:func:`fixed_split`), so every method and run sees the same split.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.routing.suite import OutcomeSuite
from harness.routing.table import OutcomeTable
from harness.suite import Artifact
from harness.weights.hub import Requirement, resolve_all

SPLIT_SEED = 42


@dataclass
class Rows:
    """A release parsed: one entry per query."""

    models: tuple[str, ...]
    scores: np.ndarray  # [Q, M]
    costs: np.ndarray  # [Q, M]
    tasks: list[str]
    splits: list[str]
    texts: list[str]
    ids: list[str]


def fixed_split(tasks: list[str], test_fraction: float, seed: int = SPLIT_SEED) -> list[str]:
    """``train``/``test`` per row: a fixed-seed ``test_fraction`` of each task is test."""
    splits = ["train"] * len(tasks)
    names = np.array(tasks, dtype=object)
    rng = np.random.default_rng(seed)
    for task in dict.fromkeys(tasks):
        rows = np.flatnonzero(names == task)
        test = rng.permutation(rows)[: int(round(test_fraction * len(rows)))]
        for row in test:
            splits[row] = "test"
    return splits


class MirroredOutcomes(OutcomeSuite):
    """An outcome table from a released file, found in ``--mirror DIR`` or on the hub."""

    requirement: ClassVar[Requirement]

    @abstractmethod
    def read(self, root: Path) -> Rows:
        """Parse the release under ``root`` (the resolved snapshot directory)."""

    def load_table(self) -> OutcomeTable:
        from tasks.routing.embeddings import sentence_embeddings

        (self._resolved,) = resolve_all(
            [self.requirement], mirror=self.context.mirror, needed_by=self.name
        )
        rows = self.read(self._resolved.path)
        features = sentence_embeddings(rows.texts, progress=self.context.progress)
        return OutcomeTable(
            models=rows.models,
            scores=rows.scores,
            costs=rows.costs,
            tasks=np.array(rows.tasks, dtype=object),
            splits=np.array(rows.splits, dtype=object),
            features=features,
            texts=tuple(rows.texts),
            ids=tuple(rows.ids),
        )

    @property
    def checkpoint_set(self) -> str:
        """The release's id (published numbers are keyed by it); its exact files are in
        the record's artifacts (revision or content hash)."""
        return self.requirement.id

    def artifacts(self) -> list[Artifact]:
        from tasks.text.minitext import build

        return [
            Artifact.of("dataset:outcomes", self._resolved),
            Artifact("encoder", build.MODEL_ID, "package", version(build.MODEL_PACKAGE)),
        ]
