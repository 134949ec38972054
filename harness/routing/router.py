"""The router contract over outcome tables.

A router is fitted on the table's ``train`` rows (scores, costs, features; never a test
outcome) and then, for queries it has not seen, predicts a utility per candidate model:
an estimate of the model's score on the query. With a willingness to pay λ it routes
each query to

    argmax_m  u_m(x) − λ · ĉ_m,     ĉ_m = train mean cost of m / the largest such mean,

so λ = 0 is quality only and a large λ sends everything to the cheapest model; sweeping
λ draws the router's quality–cost curve (RouterBench's willingness to pay). Ties go to
the cheaper model. A router that works differently (a cascade pays for every model it
tries) overrides :meth:`Router.route`.

Routers are ``nn.Module`` s so that a method's :class:`~harness.method.Solution` carries
them as ``task_modules``; the routing suite calls :meth:`Router.route`, not ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.errors import HarnessError
from harness.method import MethodContext, Solution
from harness.registry import Param
from harness.routing.table import OutcomeTable, Queries

#: The shared willingness-to-pay hyperparameter of every router (cost-aware when > 0).
WILLINGNESS = Param(
    0.0,
    help="λ, quality given up per unit of normalised cost (0: quality only); the curve "
    "sweeps it anyway",
    low=0.0,
)

#: The λ values swept to draw a curve: 0, then log-spaced up to where the cheapest model wins.
SWEEP = (0.0, *np.geomspace(1e-3, 1e3, 37).tolist())


@dataclass(frozen=True)
class Decision:
    """Which model answers each query, and which models were paid for (a cascade pays for
    every model it tried; a plain router only for its choice)."""

    choice: np.ndarray  # [Q] int
    paid: np.ndarray | None = None  # [Q, M] bool; None = only the choice

    def paid_mask(self, models: int) -> np.ndarray:
        if self.paid is not None:
            return self.paid
        mask = np.zeros((len(self.choice), models), dtype=bool)
        mask[np.arange(len(self.choice)), self.choice] = True
        return mask


class Router(nn.Module):
    """Base class: fitted on a train table, routes queries by utility − λ·cost."""

    #: True only for the oracle: the suite then hands it the queries' true outcomes.
    reads_outcomes: bool = False

    def __init__(self, train: OutcomeTable) -> None:
        super().__init__()
        if len(train) == 0:
            raise HarnessError("the routing suite gave no train queries to fit a router on")
        self.models = train.models
        costs = train.mean_costs()
        self.cost_scale = costs / costs.max() if costs.max() > 0 else np.zeros_like(costs)

    def utilities(self, queries: Queries) -> np.ndarray:
        """[Q, M] predicted score of every model on every query."""
        raise NotImplementedError

    def route(self, queries: Queries, willingness: float) -> Decision:
        return Decision(pick(self.utilities(queries), self.cost_scale, willingness))

    def route_many(self, queries: Queries, grid: Sequence[float]) -> list[Decision]:
        """One decision per λ of ``grid``, computing the utilities once (a λ sweep)."""
        if type(self).route is not Router.route:  # a router with its own decision rule
            return [self.route(queries, willingness) for willingness in grid]
        utilities = self.utilities(queries)
        return [Decision(pick(utilities, self.cost_scale, value)) for value in grid]

    def stored_parameters(self) -> int:
        """What the router stores, in 32-bit parameter equivalents (the Solution's
        ``extra_parameters``): its torch parameters and buffers by default."""
        tensors = [*self.parameters(), *self.buffers()]
        return int(sum(t.numel() for t in tensors))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused
        queries = Queries(features=features.detach().cpu().numpy())
        return torch.from_numpy(self.utilities(queries))


def pick(utilities: np.ndarray, cost_scale: np.ndarray, willingness: float) -> np.ndarray:
    """argmax of utility − λ·cost per query, ties to the cheaper model."""
    value = utilities - willingness * cost_scale[None, :]
    value = value - 1e-9 * cost_scale[None, :]
    return np.argmax(value, axis=1)


def training_table(context: MethodContext) -> OutcomeTable:
    """The suite's train rows: what a router may fit on (no validation or test outcome)."""
    table = getattr(context.suite, "training_table", None)
    if table is None:
        raise context.suite.lacks("outcomes")
    return table()


def router_solution(router: Router, willingness: float, **info: object) -> Solution:
    """The same router for every task; the suite scores it at ``willingness`` and sweeps λ
    for the curve."""
    router.willingness = float(willingness)
    router.eval()
    return Solution(
        task_modules=lambda task: router,
        extra_parameters=router.stored_parameters(),
        info={"willingness": float(willingness), **info},
    )


def seeded(context: MethodContext, salt: str) -> np.random.Generator:
    """A numpy generator that depends only on the run's seed and ``salt``."""
    from harness.method import hash_seed

    return np.random.default_rng(hash_seed(context.seed, salt))
