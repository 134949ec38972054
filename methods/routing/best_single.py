"""Best single model (the baseline of every routing paper: RouterBench, RouteLLM, RouterDC).

Every query goes to the model with the highest mean score on the train rows; with a
willingness to pay λ, to the model maximising train mean score − λ·normalised cost, so
the λ sweep visits the single models on the train Pareto front.
"""

from __future__ import annotations

import numpy as np

from harness.method import MethodContext, Solution
from harness.registry import register_method
from harness.routing.router import WILLINGNESS, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries


class BestSingle(Router):
    def __init__(self, train: OutcomeTable) -> None:
        super().__init__(train)
        self.means = train.mean_scores()

    def utilities(self, queries: Queries) -> np.ndarray:
        return np.broadcast_to(self.means, (len(queries), len(self.models))).copy()

    def stored_parameters(self) -> int:
        return len(self.models)


@register_method(
    "best_single",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"willingness": WILLINGNESS},
    needs=("outcomes",),
    description="The one model best on the train queries, for every query.",
)
def best_single(context: MethodContext, willingness: float) -> Solution:
    return router_solution(BestSingle(training_table(context)), willingness)
