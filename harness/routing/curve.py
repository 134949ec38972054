"""A router's quality–cost curve over a table's rows, and the summary the record keeps.

The curve sweeps the willingness to pay λ (:data:`harness.routing.router.SWEEP`); each λ
gives one (mean cost, quality) point on the rows. The single models are points too; the
strong model of PGR is the best single model on the rows and the weak one the cheapest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.routing import metrics
from harness.routing.router import SWEEP, Decision, Router
from harness.routing.table import OutcomeTable


@dataclass(frozen=True)
class Outcome:
    """Per-query score and cost of one routing."""

    scores: np.ndarray  # [Q]
    costs: np.ndarray  # [Q]
    choice: np.ndarray  # [Q]


def outcome(table: OutcomeTable, rows: np.ndarray, decision: Decision) -> Outcome:
    """What the table says the routing of ``rows`` scored and cost."""
    scores = table.scores[rows]
    costs = table.costs[rows]
    paid = decision.paid_mask(len(table.models))
    chosen = scores[np.arange(len(rows)), decision.choice]
    return Outcome(chosen, (costs * paid).sum(axis=1), decision.choice)


def route(router: Router, table: OutcomeTable, rows: np.ndarray, willingness: float) -> Outcome:
    queries = table.queries(rows, with_outcomes=router.reads_outcomes)
    return outcome(table, rows, router.route(queries, willingness))


def sweep(
    router: Router, table: OutcomeTable, rows: np.ndarray, grid: Sequence[float] = SWEEP
) -> list[dict[str, float]]:
    """One point per λ: willingness, mean cost, quality (%)."""
    points = []
    queries = table.queries(rows, with_outcomes=router.reads_outcomes)
    for willingness, decision in zip(grid, router.route_many(queries, grid)):
        result = outcome(table, rows, decision)
        points.append(
            {
                "willingness": float(willingness),
                "cost": metrics.mean_cost(result.costs),
                "accuracy": metrics.quality(result.scores),
            }
        )
    return points


def model_points(table: OutcomeTable, rows: np.ndarray) -> list[dict[str, Any]]:
    """Each single model's (cost, quality) on the rows."""
    return [
        {
            "model": model,
            "cost": metrics.mean_cost(table.costs[rows, index]),
            "accuracy": metrics.quality(table.scores[rows, index]),
        }
        for index, model in enumerate(table.models)
    ]


def recovered_gap(
    points: list[tuple[float, float]], singles: list[dict[str, Any]], value: float
) -> dict[str, Any]:
    """PGR at the operating point, APGR and CPT against the strong model (best quality,
    ties to the cheaper) and the weak one (the cheapest other model, ties to the better).
    All None when they are undefined: the best model is also the cheapest, or every
    model costs the same (there is no gap to buy back with cost)."""
    strong = max(singles, key=lambda p: (p["accuracy"], -p["cost"]))
    others = [p for p in singles if p is not strong]
    weak = min(others, key=lambda p: (p["cost"], -p["accuracy"])) if others else None
    names = {"weak": weak["model"] if weak else None, "strong": strong["model"]}
    if weak is None or weak["cost"] >= strong["cost"] or weak["accuracy"] >= strong["accuracy"]:
        return {
            "weak": None,
            "strong": None,
            "pgr": None,
            "apgr": None,
            "cpt50": None,
            "cpt80": None,
        }
    low, high = (weak["cost"], weak["accuracy"]), (strong["cost"], strong["accuracy"])
    return {
        **names,
        "pgr": metrics.pgr(value, weak["accuracy"], strong["accuracy"]),
        "apgr": metrics.apgr(points, low, high),
        "cpt50": metrics.cpt(points, low, high, 0.5),
        "cpt80": metrics.cpt(points, low, high, 0.8),
    }


def summary(
    router: Router, table: OutcomeTable, rows: np.ndarray, willingness: float
) -> dict[str, Any]:
    """The record's ``suite.summary`` for a router on ``rows``: its operating point, curve,
    AIQ over the single models' cost range, APGR and CPT against weak/strong models,
    the single models and the oracle's quality."""
    at = route(router, table, rows, willingness)
    curve = sweep(router, table, rows)
    singles = model_points(table, rows)
    points = [(p["cost"], p["accuracy"]) for p in curve]
    costs = [p["cost"] for p in singles]
    gap = recovered_gap(points, singles, metrics.quality(at.scores))
    return {
        "accuracy": metrics.quality(at.scores),
        "cost": metrics.mean_cost(at.costs),
        "willingness": float(willingness),
        "aiq": metrics.aiq(points, (min(costs), max(costs))),
        **gap,
        "oracle_accuracy": metrics.quality(table.scores[rows].max(axis=1)),
        "choices": {
            model: int((at.choice == index).sum()) for index, model in enumerate(table.models)
        },
        "curve": curve,
        "models": singles,
        "per_task": dict(metrics.per_task(table.tasks[rows], at.scores, at.costs)),
    }
