"""The outcome table: queries × candidate models, with each model's score and cost.

Scores are in [0, 1] (1 = correct); costs are non-negative and in the suite's own unit
(dollars per query for RouterBench, parameters per query for the harness's experts).
Every query has a task and a split (``train``, ``validation`` or ``test``) and a feature
vector, which is what routers read: a sentence embedding of the query text, or for
queries without text (images) the pretrained model's features of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.errors import HarnessError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Queries:
    """What a router may see of some queries: features (and text where there is any).

    ``outcomes`` is empty except for routers that declare they read them (the oracle,
    an upper bound): everything else routes from features alone.
    """

    features: np.ndarray  # [Q, D] float32
    texts: tuple[str, ...] | None = None
    outcomes: tuple[np.ndarray, np.ndarray] | None = None  # (scores, costs), oracle only

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass(frozen=True)
class OutcomeTable:
    """Per-query scores and costs of every candidate model, with tasks and splits."""

    models: tuple[str, ...]
    scores: np.ndarray  # [Q, M] in [0, 1]
    costs: np.ndarray  # [Q, M] >= 0
    tasks: np.ndarray  # [Q] str
    splits: np.ndarray  # [Q] str, one of SPLITS
    features: np.ndarray  # [Q, D] float32
    texts: tuple[str, ...] | None = None
    ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("tasks", "splits"):  # object arrays: no fixed-width truncation
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=object))
        queries, models = self.scores.shape if self.scores.ndim == 2 else (-1, -1)
        if models != len(self.models) or self.costs.shape != self.scores.shape:
            raise HarnessError(
                f"outcome table: scores {self.scores.shape} and costs {self.costs.shape} "
                f"must both be [queries, {len(self.models)} models]"
            )
        for name, column in (("tasks", self.tasks), ("splits", self.splits)):
            if len(column) != queries:
                raise HarnessError(f"outcome table: {name} has {len(column)} rows, not {queries}")
        if self.features.ndim != 2 or self.features.shape[0] != queries:
            raise HarnessError(f"outcome table: features must be [{queries}, dim]")
        if self.texts is not None and len(self.texts) != queries:
            raise HarnessError(f"outcome table: {len(self.texts)} texts for {queries} queries")
        if not np.isfinite(self.scores).all() or not np.isfinite(self.costs).all():
            raise HarnessError("outcome table: a score or cost is missing (NaN) or infinite")
        if (self.scores < 0).any() or (self.scores > 1).any():
            raise HarnessError("outcome table: scores must lie in [0, 1]")
        if (self.costs < 0).any():
            raise HarnessError("outcome table: costs must be non-negative")
        unknown = set(np.unique(self.splits).tolist()) - set(SPLITS)
        if unknown:
            raise HarnessError(f"outcome table: unknown splits {sorted(unknown)}; use {SPLITS}")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def task_names(self) -> list[str]:
        """Tasks in order of first appearance."""
        seen: dict[str, None] = {}
        for task in self.tasks.tolist():
            seen.setdefault(task, None)
        return list(seen)

    def rows(self, split: str, task: str | None = None) -> np.ndarray:
        """Indices of one split's queries (of one task, if given)."""
        keep = self.splits == split
        if task is not None:
            keep &= self.tasks == task
        return np.flatnonzero(keep)

    def take(self, rows: Sequence[int] | np.ndarray) -> OutcomeTable:
        """A table of some rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        return OutcomeTable(
            models=self.models,
            scores=self.scores[rows],
            costs=self.costs[rows],
            tasks=self.tasks[rows],
            splits=self.splits[rows],
            features=self.features[rows],
            texts=None if self.texts is None else tuple(self.texts[i] for i in rows),
            ids=tuple(self.ids[i] for i in rows) if self.ids else (),
        )

    def split(self, split: str) -> OutcomeTable:
        return self.take(self.rows(split))

    def queries(self, rows: np.ndarray | None = None, *, with_outcomes: bool = False) -> Queries:
        """What a router sees of some rows (all rows if None)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        return Queries(
            features=self.features[rows],
            texts=None if self.texts is None else tuple(self.texts[i] for i in rows),
            outcomes=(self.scores[rows], self.costs[rows]) if with_outcomes else None,
        )

    def mean_costs(self) -> np.ndarray:
        """[M] each model's mean cost per query over this table's rows."""
        return self.costs.mean(axis=0)

    def mean_scores(self) -> np.ndarray:
        """[M] each model's mean score over this table's rows."""
        return self.scores.mean(axis=0)

    def to_frame(self):
        """A pandas frame, one row per query: id, task, split, text, then per model
        ``<model>`` (score) and ``<model>|cost``."""
        import pandas as pd

        columns: dict[str, object] = {
            "id": list(self.ids) if self.ids else [str(i) for i in range(len(self))],
            "task": self.tasks,
            "split": self.splits,
        }
        if self.texts is not None:
            columns["text"] = list(self.texts)
        for index, model in enumerate(self.models):
            columns[model] = self.scores[:, index]
            columns[f"{model}|cost"] = self.costs[:, index]
        return pd.DataFrame(columns)
