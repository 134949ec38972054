"""Oracle router: the upper bound of RouterBench (Hu et al., 2024,
https://arxiv.org/abs/2403.12031) and RouterDC's "oracle" row.

It reads each test query's true outcomes and sends it to the model that scored best on
it (ties to the cheapest); with λ it maximises score − λ·(the query's real cost / the
largest train mean cost). No router can beat it: it is a bound, not a method to deploy.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from harness.method import MethodContext, Solution
from harness.registry import register_method
from harness.routing.router import WILLINGNESS, Decision, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries


class OracleRouter(Router):
    reads_outcomes = True

    def __init__(self, train: OutcomeTable) -> None:
        super().__init__(train)
        means = train.mean_costs()
        self.scale = float(means.max()) if means.max() > 0 else 1.0

    def utilities(self, queries: Queries) -> np.ndarray:
        if queries.outcomes is None:
            raise HarnessError("the oracle router needs the queries' outcomes")
        return queries.outcomes[0]

    def route(self, queries: Queries, willingness: float) -> Decision:
        scores = self.utilities(queries)
        costs = queries.outcomes[1] / self.scale
        return Decision(np.argmax(scores - willingness * costs - 1e-9 * costs, axis=1))

    def stored_parameters(self) -> int:
        return 0


@register_method(
    "oracle_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"willingness": WILLINGNESS},
    needs=("outcomes",),
    description="Upper bound: each query to the model that really scored best on it.",
)
def oracle_router(context: MethodContext, willingness: float) -> Solution:
    return router_solution(OracleRouter(training_table(context)), willingness)
