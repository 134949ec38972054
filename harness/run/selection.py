"""Hyperparameter selection on the validation split, never on test.

Values the user fixes with ``--set`` are kept; every other hyperparameter with a grid is
searched over the cross product of the grids. The candidate with the best mean
validation metric wins (first in grid order on ties), and every candidate's score goes
into the record so the choice can be audited.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.registry import Entry

STRATEGIES = ("grid", "defaults")


@dataclass
class Selection:
    hyperparameters: dict[str, Any]
    strategy: str  # "grid", "defaults" or "fixed"
    fixed: list[str]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    split: str | None = None
    metric: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "split": self.split,
            "metric": self.metric,
            "fixed": self.fixed,
            "grid": self.grid,
            "candidates": self.candidates,
        }


def candidate_grid(entry: Entry, overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every hyperparameter setting to try: defaults, overrides, and the free grids."""
    base = entry.resolve_params(overrides)
    free = {name: values for name, values in entry.grid.items() if name not in overrides}
    if not free:
        return [base]
    names = list(free)
    settings = []
    for combination in itertools.product(*(free[name] for name in names)):
        setting = dict(base)
        setting.update(
            {name: entry.params[name].check(name, v) for name, v in zip(names, combination)}
        )
        settings.append(setting)
    return settings


def select(
    entry: Entry,
    overrides: Mapping[str, Any],
    strategy: str,
    score: Callable[[dict[str, Any]], float],
    *,
    metric: str,
) -> Selection:
    """Choose hyperparameters; ``score`` runs the method and returns the validation mean."""
    fixed = sorted(overrides)
    resolved = entry.resolve_params(overrides)
    free_grid = {name: vals for name, vals in entry.grid.items() if name not in overrides}
    if strategy == "defaults" or not free_grid:
        chosen = "fixed" if fixed and set(fixed) >= set(entry.params) else "defaults"
        return Selection(resolved, chosen, fixed)
    candidates = []
    best: tuple[float, dict[str, Any]] | None = None
    for setting in candidate_grid(entry, overrides):
        value = float(score(setting))
        candidates.append({"hyperparameters": setting, "score": value})
        if best is None or value > best[0]:
            best = (value, setting)
    assert best is not None
    return Selection(
        best[1],
        "grid",
        fixed,
        grid=free_grid,
        candidates=candidates,
        split="validation",
        metric=metric,
    )
