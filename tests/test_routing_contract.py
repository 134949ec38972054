"""The routing family's contract, as scikit-learn's ``check_estimator``: every registered
router over outcome tables (``needs=("outcomes",)``) runs on one generated table and must

* be registered in the routing family with a paper link, a willingness-to-pay λ and
  legal defaults;
* route the same way under the same seed;
* never read test (or validation) outcomes while fitting: poisoning them leaves its
  routing of the test queries unchanged (the oracle, which reads them by design, is
  the one exception and says so with ``reads_outcomes``);
* lie between the random router and the oracle in quality (random averaged over seeds);
* spend less as λ grows (the cheapest model wins at a large λ);
* be refused on a suite without an outcome table, and an outcome suite refuses methods
  of other families, in one line.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.registry import METHODS
from harness.routing.curve import route
from harness.routing.table import OutcomeTable
from tests.routing_tables import generated_table, table_context

ROUTERS = [name for name in METHODS.names() if "outcomes" in METHODS.get(name).needs]
LAMBDAS = (0.0, 0.3, 3.0)


def _settings(name: str) -> dict:
    entry = METHODS.get(name)
    return {**entry.defaults, **entry.smoke}


@functools.cache
def _table() -> OutcomeTable:
    return generated_table(seed=1, queries=400)


def _fit(name: str, table: OutcomeTable, seed: int = 0):
    context = table_context(table, seed=seed)
    solution = METHODS.get(name).obj(context, **_settings(name))
    return context.suite, solution.task_modules(context.suite.tasks[0]), solution


def _choices(suite, router) -> list[np.ndarray]:
    rows = suite.table.rows("test")
    return [route(router, suite.table, rows, value).choice for value in LAMBDAS]


@functools.cache
def _quality(name: str, seed: int = 0) -> float:
    suite, router, _ = _fit(name, _table(), seed)
    rows = suite.table.rows("test")
    return float(route(router, suite.table, rows, 0.0).scores.mean())


def test_every_router_is_registered():
    assert {"random_router", "oracle_router", "best_single", "knn_router"} <= set(ROUTERS)


@pytest.mark.parametrize("name", ROUTERS)
def test_registration(name):
    entry = METHODS.get(name)
    assert entry.family == "routing"
    assert entry.reference.startswith("https://")
    assert "willingness" in entry.params and entry.defaults["willingness"] == 0.0
    for key, param in entry.params.items():
        assert param.check(key, param.default) == param.default


@pytest.mark.parametrize("name", ROUTERS)
def test_same_seed_same_routing(name):
    first_suite, first, solution = _fit(name, _table())
    again_suite, again, _ = _fit(name, _table())
    for a, b in zip(_choices(first_suite, first), _choices(again_suite, again)):
        assert np.array_equal(a, b), f"{name} routes differently under the same seed"
    assert solution.extra_parameters >= 0


@pytest.mark.parametrize("name", ROUTERS)
def test_never_reads_test_outcomes_while_fitting(name):
    table = _table()
    held_out = table.splits != "train"
    rng = np.random.default_rng(7)
    poisoned_scores = table.scores.copy()
    poisoned_scores[held_out] = rng.random((int(held_out.sum()), len(table.models)))
    poisoned_costs = table.costs.copy()
    poisoned_costs[held_out] = rng.random((int(held_out.sum()), len(table.models))) * 50
    poisoned = OutcomeTable(
        **{**table.__dict__, "scores": poisoned_scores, "costs": poisoned_costs}
    )
    suite, router, _ = _fit(name, table)
    poisoned_suite, poisoned_router, _ = _fit(name, poisoned)
    if router.reads_outcomes:  # the oracle: a bound that reads them by design
        assert name == "oracle_router"
        return
    # route the same (clean) test queries with both fits
    for a, b in zip(_choices(suite, router), _choices(suite, poisoned_router)):
        assert np.array_equal(a, b), f"{name} changed when test outcomes changed"


@pytest.mark.parametrize("name", ROUTERS)
def test_between_random_and_oracle(name):
    oracle = _quality("oracle_router")
    random = np.mean([_quality("random_router", seed) for seed in range(5)])
    value = _quality(name)
    assert value <= oracle + 1e-12, f"{name} beat the oracle"
    if name != "random_router":
        assert value >= random, f"{name} ({value:.3f}) is worse than random ({random:.3f})"


@pytest.mark.parametrize("name", ROUTERS)
def test_paying_less_as_willingness_grows(name):
    suite, router, _ = _fit(name, _table())
    rows = suite.table.rows("test")
    spent = [route(router, suite.table, rows, value).costs.mean() for value in (0.0, 1e3)]
    assert spent[1] <= spent[0] + 1e-9
    cheapest = int(np.argmin(suite.table.split("train").mean_costs()))
    if name != "oracle_router":  # the oracle weighs each query's own costs
        assert (route(router, suite.table, rows, 1e3).choice == cheapest).all()


def test_outcome_routers_refused_on_weight_suites_and_the_reverse():
    from harness.run.runner import RunSpec

    with pytest.raises(HarnessError, match="outcome table"):
        RunSpec(method="knn_router", suite="mini8").entries()
    with pytest.raises(HarnessError, match="only routing methods"):
        RunSpec(method="ties", suite="routerdc").entries()
