"""Cascade router (RouterBench's non-predictive cascade, Hu et al., 2024,
https://arxiv.org/abs/2403.12031; FrugalGPT's LLM cascade, https://arxiv.org/abs/2305.05176).

Models are tried from the cheapest up along the train Pareto chain (each one costlier
and better on the train queries than the one before); a model's answer is accepted when
a judge trusts it, else the next model is asked; the last model is always accepted.
Every model tried is paid for. The judge here is the kNN estimate of the model's score
on the query (mean score of the k most similar train queries, k = 10); it accepts when
the estimate is at least a threshold τ, and the willingness to pay λ sets τ = max(0, 1 − λ):
λ = 0 escalates until a model's neighbours were all right, λ ≥ 1 stops at the
cheapest. (RouterBench's cascades used an LLM judge with a set error rate; a judge that
reads the query's outcome would be an oracle.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, Decision, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries
from harness.routing.training import cosine_neighbours

NEIGHBOURS = Param(10, help="k of the kNN judge", low=1)


def pareto_chain(mean_costs: np.ndarray, mean_scores: np.ndarray) -> list[int]:
    """Models by ascending cost, each better than every cheaper one (ties: cheaper first)."""
    chain: list[int] = []
    for index in np.lexsort((-mean_scores, mean_costs)):
        if not chain or mean_scores[index] > mean_scores[chain[-1]]:
            chain.append(int(index))
    return chain


class CascadeRouter(Router):
    def __init__(self, train: OutcomeTable, k: int) -> None:
        super().__init__(train)
        self.k = k
        self.chain = pareto_chain(train.mean_costs(), train.mean_scores())
        self.train_features = train.features.astype(np.float32)
        self.train_scores = train.scores

    def utilities(self, queries: Queries) -> np.ndarray:
        neighbours = cosine_neighbours(self.train_features, queries.features, self.k)
        return self.train_scores[neighbours].mean(axis=1)

    def route(self, queries: Queries, willingness: float) -> Decision:
        return self.cascade(self.utilities(queries), willingness)

    def route_many(self, queries: Queries, grid: Sequence[float]) -> list[Decision]:
        estimate = self.utilities(queries)  # the judge once, every threshold from it
        return [self.cascade(estimate, willingness) for willingness in grid]

    def cascade(self, estimate: np.ndarray, willingness: float) -> Decision:
        count = len(estimate)
        threshold = max(0.0, 1.0 - willingness)
        choice = np.full(count, self.chain[-1])
        paid = np.zeros((count, len(self.models)), dtype=bool)
        open_ = np.ones(count, dtype=bool)
        for position, model in enumerate(self.chain):
            paid[open_, model] = True
            last = position == len(self.chain) - 1
            accept = open_ & ((estimate[:, model] >= threshold - 1e-12) | last)
            choice[accept] = model
            open_ &= ~accept
        return Decision(choice, paid)

    def stored_parameters(self) -> int:
        return int(self.train_features.size + self.train_scores.size)


@register_method(
    "cascade_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"k": NEIGHBOURS, "willingness": WILLINGNESS},
    needs=("outcomes",),
    description="Cheapest model first; escalate while a kNN judge doubts the answer.",
)
def cascade_router(context: MethodContext, k: int, willingness: float) -> Solution:
    return router_solution(CascadeRouter(training_table(context), k), willingness)
