"""Random router (RouterBench's baseline, Hu et al., 2024, https://arxiv.org/abs/2403.12031).

Every query gets a utility per model drawn uniformly at random, so at λ = 0 each query
goes to a uniformly random model; with λ > 0 cheaper models win more often. The draw
is seeded by the run's seed and fixed per router, so the same seed routes the same way.
"""

from __future__ import annotations

import numpy as np

from harness.method import MethodContext, Solution, hash_seed
from harness.registry import register_method
from harness.routing.router import WILLINGNESS, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries


class RandomRouter(Router):
    def __init__(self, train: OutcomeTable, seed: int) -> None:
        super().__init__(train)
        self.seed = seed

    def utilities(self, queries: Queries) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.random((len(queries), len(self.models)))


@register_method(
    "random_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"willingness": WILLINGNESS},
    needs=("outcomes",),
    description="Each query to a uniformly random candidate model (the floor).",
)
def random_router(context: MethodContext, willingness: float) -> Solution:
    train = training_table(context)
    return router_solution(
        RandomRouter(train, hash_seed(context.seed, "random_router")), willingness
    )
