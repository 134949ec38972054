"""Routing metrics against hand-computed values: AIQ (RouterBench), PGR/APGR and CPT
(RouteLLM), the convex hull, per-task breakdown, and a router's summary on a table."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.routing import metrics
from harness.routing.curve import outcome, summary
from harness.routing.router import Decision, Router
from harness.routing.table import OutcomeTable, Queries


def test_hull_drops_points_under_a_chord_and_decreasing_ones():
    points = [(1, 50), (2, 60), (3, 90), (4, 80), (3, 70)]
    # (2, 60) is under the chord (1,50)→(3,90) (70 there); (4, 80) is worse than (3, 90)
    assert metrics.nondecreasing_hull(points) == [(1, 50), (3, 90)]


def test_aiq_by_hand():
    points = [(1, 50), (2, 60), (3, 90), (4, 80)]
    # over [1, 5]: trapezoid (50+90)/2·2 = 140, then flat 90·2 = 180 → 320 / 4 = 80
    assert metrics.aiq(points, (1, 5)) == pytest.approx(80.0)
    # own range [1, 4]: 140 + 90 = 230 → 230 / 3
    assert metrics.aiq(points) == pytest.approx(230 / 3)
    # a range starting below the cheapest point counts 0 there: [0, 5] → 320 / 5
    assert metrics.aiq(points, (0, 5)) == pytest.approx(64.0)


def test_aiq_of_one_point_is_its_quality_flat_to_the_end():
    assert metrics.aiq([(2, 70)], (2, 10)) == pytest.approx(70.0)


def test_pgr_apgr_cpt_by_hand():
    weak, strong = (0.0, 60.0), (1.0, 80.0)
    assert metrics.pgr(76.0, 60.0, 80.0) == pytest.approx(0.8)
    points = [(0.5, 76.0)]  # half the calls strong recover 80% of the gap
    # PGR curve (0,0) (0.5,0.8) (1,1): area 0.5·0.4 + 0.5·0.9 = 0.65
    assert metrics.apgr(points, weak, strong) == pytest.approx(0.65)
    # PGR 0.5 is reached at 0.5·0.5/0.8 = 0.3125 of the calls, 0.8 at 0.5
    assert metrics.cpt(points, weak, strong, 0.5) == pytest.approx(31.25)
    assert metrics.cpt(points, weak, strong, 0.8) == pytest.approx(50.0)
    # a router no better than mixing the two at random: APGR 0.5, CPT(50%) = 50%
    assert metrics.apgr([(0.25, 65.0)], weak, strong) == pytest.approx(0.5)
    assert metrics.cpt([(0.25, 65.0)], weak, strong, 0.5) == pytest.approx(50.0)


def test_cpt_normalises_costs_between_weak_and_strong():
    weak, strong = (2.0, 60.0), (12.0, 80.0)  # costs 2 and 12 per query
    # cost 7 is halfway: the same as half the calls strong
    assert metrics.cpt([(7.0, 76.0)], weak, strong, 0.8) == pytest.approx(50.0)


def test_per_task_breakdown():
    tasks = np.array(["a", "b", "a", "b"], dtype=object)
    result = metrics.per_task(tasks, np.array([1.0, 0.0, 0.0, 0.0]), np.array([1, 2, 3, 4.0]))
    assert result["a"] == {"accuracy": 50.0, "cost": 2.0, "n": 2}
    assert result["b"] == {"accuracy": 0.0, "cost": 3.0, "n": 2}


def _two_model_table() -> OutcomeTable:
    # weak model (cost 0) right on queries 0,1; strong (cost 1) right on 0,1,2,3
    scores = np.array([[1, 1], [1, 1], [0, 1], [0, 1], [1, 1], [0, 0]], dtype=float)
    costs = np.array([[0.0, 1.0]] * 6)
    return OutcomeTable(
        models=("weak", "strong"),
        scores=scores,
        costs=costs,
        tasks=np.array(["t"] * 6),
        splits=np.array(["test"] * 4 + ["train"] * 2),
        features=np.arange(12, dtype=np.float32).reshape(6, 2),
    )


class _Fixed(Router):
    """Utilities given per query: strong preferred by the given margins."""

    def __init__(self, table: OutcomeTable, margins: np.ndarray) -> None:
        super().__init__(table.split("train"))
        self.margins = margins

    def utilities(self, queries: Queries) -> np.ndarray:
        margin = self.margins[: len(queries)]
        return np.stack([np.zeros_like(margin), margin], axis=1)


def test_summary_of_a_router_on_a_two_model_table():
    table = _two_model_table()
    rows = table.rows("test")
    # strong preferred by margins 0.05, 0.1 (queries the weak gets right), 2, 3: as λ
    # grows, queries 0 and 1 go weak first, then 2 and 3
    router = _Fixed(table, np.array([0.05, 0.1, 2.0, 3.0]))
    result = summary(router, table, rows, 0.5)
    assert result["accuracy"] == 100.0 and result["cost"] == 0.5  # 2, 3 strong
    assert result["strong"] == "strong" and result["weak"] == "weak"
    # the curve reaches PGR 1 at half the strong calls: APGR = 0.5·(0+1)/2 + 0.5 = 0.75
    assert result["apgr"] == pytest.approx(0.75)
    assert result["cpt50"] == pytest.approx(25.0)
    assert result["aiq"] == pytest.approx(87.5)  # (50+100)/2·0.5 + 100·0.5
    assert result["oracle_accuracy"] == 100.0
    assert result["per_task"]["t"]["n"] == 4


def test_a_cascade_pays_for_every_model_it_tried():
    table = _two_model_table()
    rows = table.rows("test")
    paid = np.ones((4, 2), dtype=bool)
    result = outcome(table, rows, Decision(np.array([1, 1, 1, 1]), paid))
    assert result.costs.tolist() == [1.0] * 4


def test_bad_tables_are_refused_in_one_line():
    table = _two_model_table()
    with pytest.raises(HarnessError, match="scores must lie in"):
        OutcomeTable(**{**table.__dict__, "scores": table.scores * 2})
    with pytest.raises(HarnessError, match="missing"):
        OutcomeTable(**{**table.__dict__, "costs": table.costs * np.nan})
    with pytest.raises(HarnessError, match="unknown splits"):
        OutcomeTable(**{**table.__dict__, "splits": np.array(["dev"] * 6)})
