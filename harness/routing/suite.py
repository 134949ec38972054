"""The suite kind that scores routers over an outcome table (``provides`` "outcomes").

A subclass says how to load its table (:meth:`OutcomeSuite.load_table`: from a mirror,
or built from the harness's own experts) and its artifacts; everything else is here:

- methods fit on :meth:`OutcomeSuite.training_table` (the train rows only);
- ``evaluate(router, task, split)`` routes that task's queries at the router's λ and
  reads quality and cost off the table; no model runs;
- after the test split, ``evaluation_summary`` sweeps λ over all test queries for the
  curve, AIQ, APGR and CPT (recorded as ``suite.summary``);
- a task's individual reference is the best single model's test quality on it.

Where the table has no ``validation`` rows, a fixed 10% of each task's train rows is
carved out (:func:`harness.splits.validation_indices`) for hyperparameter selection.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import HarnessError, UnknownNameError
from harness.routing import metrics
from harness.routing.curve import route, summary
from harness.routing.router import Router
from harness.routing.table import OutcomeTable
from harness.splits import validation_indices
from harness.suite import Suite


class OutcomePool:
    """The candidate models of an outcome table: names only, no weights to merge."""

    def __init__(self, models: tuple[str, ...], tasks: list[str]) -> None:
        self.models = models
        self._tasks = tasks

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def _no_weights(self, *_: object) -> Any:
        raise HarnessError(
            "an outcome-table suite holds scores, not weights: only routing methods run on "
            "it (harness list methods --family routing)"
        )

    base_state = expert_state = _no_weights


class OutcomeSuite(Suite):
    """Routers over a table of per-query scores and costs of candidate models."""

    provides: ClassVar[frozenset[str]] = frozenset({"outcomes"})
    method_families: ClassVar[tuple[str, ...] | None] = ("routing",)
    tasks_are_experts: ClassVar[bool] = False
    metric = "accuracy"
    #: What a unit of cost is, for the page and the record.
    cost_unit: ClassVar[str] = "cost"
    #: The weight suite whose experts the table scores (mini8-outcomes: mini8), whose
    #: merges the leaderboard places beside the routers at one model's cost; None if none.
    merge_suite: ClassVar[str | None] = None

    # ------------------------------------------------------------------ loading
    @abstractmethod
    def load_table(self) -> OutcomeTable:
        """The whole table (every split), features included."""

    def select_tasks(self, tasks: list[str] | None) -> None:
        self._only = list(tasks) if tasks else None  # checked once the table is loaded

    def prepare(self) -> None:
        table = self.load_table()
        only = getattr(self, "_only", None)
        if only:
            unknown = [task for task in only if task not in table.task_names]
            if unknown:
                raise UnknownNameError(
                    f"suite {self.name!r} has no task {unknown[0]!r}; its tasks: "
                    f"{', '.join(table.task_names)}"
                )
            table = table.take(np.flatnonzero(np.isin(table.tasks, only)))
        self.table = with_validation(table)
        self.tasks = self.table.task_names
        self._last: Router | None = None

    # ------------------------------------------------------------------ contract
    def training_table(self) -> OutcomeTable:
        """The train rows: what a router fits on."""
        return self.table.split("train")

    def pool(self) -> OutcomePool:
        return OutcomePool(self.table.models, self.tasks)

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        return self.pool()._no_weights()

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        if not isinstance(model, Router):
            raise HarnessError(
                f"suite {self.name!r} scores routers over its outcome table; "
                f"got a {type(model).__name__}"
            )
        rows = self.table.rows(split, task)[:limit]
        result = route(model, self.table, rows, getattr(model, "willingness", 0.0))
        if split == "test":
            self._last = model
        return {
            "accuracy": metrics.quality(result.scores),
            "cost": metrics.mean_cost(result.costs),
            "n": len(rows),
        }

    def evaluation_summary(self) -> Mapping[str, Any]:
        if self._last is None:
            return {}
        rows = np.flatnonzero((self.table.splits == "test") & np.isin(self.table.tasks, self.tasks))
        result = summary(self._last, self.table, rows, getattr(self._last, "willingness", 0.0))
        return {"cost_unit": self.cost_unit, **result}

    def reference_scores(self) -> Mapping[str, float]:
        """Per task, the best single model's test quality: routing's 'individual'."""
        reference = {}
        for task in self.tasks:
            rows = self.table.rows("test", task)
            reference[task] = float(self.table.scores[rows].mean(axis=0).max()) * 100.0
        return reference


def with_validation(table: OutcomeTable) -> OutcomeTable:
    """The table with a fixed 10% of each task's train rows relabelled ``validation``,
    unless it already has validation rows."""
    if (table.splits == "validation").any():
        return table
    splits = table.splits.copy()
    for task in table.task_names:
        rows = table.rows("train", task)
        _, held = validation_indices(len(rows))
        splits[rows[held]] = "validation"
    return OutcomeTable(
        models=table.models,
        scores=table.scores,
        costs=table.costs,
        tasks=table.tasks,
        splits=splits,
        features=table.features,
        texts=table.texts,
        ids=table.ids,
    )
