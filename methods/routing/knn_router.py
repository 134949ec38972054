"""kNN router (RouterBench's kNN baseline, Hu et al., 2024, https://arxiv.org/abs/2403.12031;
also the strong baseline of "a well-tuned kNN matches most learned routers").

    u_m(x) = (1/k) Σ_{j ∈ N_k(x)} s_{j,m}

where N_k(x) are the k train queries whose embeddings are most cosine-similar to x's
(RouterBench: k ∈ {5, 10, 40}, cosine, sentence embeddings; here all-MiniLM-L6-v2 for
text, the pretrained model's features for images). Route: argmax u − λ·ĉ.
"""

from __future__ import annotations

import numpy as np

from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries
from harness.routing.training import cosine_neighbours

NEIGHBOURS = Param(10, help="k, train queries averaged per query", low=1, grid=[5, 10, 40])


class KnnRouter(Router):
    def __init__(self, train: OutcomeTable, k: int) -> None:
        super().__init__(train)
        self.k = k
        self.train_features = train.features.astype(np.float32)
        self.train_scores = train.scores

    def utilities(self, queries: Queries) -> np.ndarray:
        neighbours = cosine_neighbours(self.train_features, queries.features, self.k)
        return self.train_scores[neighbours].mean(axis=1)

    def stored_parameters(self) -> int:
        return int(self.train_features.size + self.train_scores.size)


@register_method(
    "knn_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"k": NEIGHBOURS, "willingness": WILLINGNESS},
    needs=("outcomes",),
    description="Mean score of each model over the k most similar train queries.",
)
def knn_router(context: MethodContext, k: int, willingness: float) -> Solution:
    return router_solution(KnnRouter(training_table(context), k), willingness)
