"""Logistic-regression router (RouterBench's linear baselines, Hu et al., 2024,
https://arxiv.org/abs/2403.12031; RouterEval's linear router).

One logistic regression per candidate model on the standardised query embedding:

    u_m(x) = σ(w_mᵀ x + b_m)

fitted jointly with binary cross-entropy on the train scores (soft labels) and an L2
penalty (AdamW weight decay). Route: argmax u − λ·ĉ.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.method import MethodContext, Solution, hash_seed
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, router_solution, training_table
from harness.routing.training import PredictorRouter

STEPS = Param(400, help="AdamW steps", low=0)
LR = Param(1e-2, help="learning rate", low=0.0)
DECAY = Param(1e-3, help="L2 penalty (AdamW weight decay)", low=0.0, grid=[1e-4, 1e-3, 1e-2])


@register_method(
    "logistic_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"steps": STEPS, "lr": LR, "weight_decay": DECAY, "willingness": WILLINGNESS},
    needs=("outcomes",),
    smoke={"steps": 60},
    description="One logistic regression per model predicts its score from the query.",
)
def logistic_router(
    context: MethodContext, steps: int, lr: float, weight_decay: float, willingness: float
) -> Solution:
    train = training_table(context)
    seed = hash_seed(context.seed, "logistic_router")
    torch.manual_seed(seed)
    router = PredictorRouter(train, nn.Linear(train.features.shape[1], len(train.models)))
    losses = router.fit(
        train, steps=steps, lr=lr, batch_size=256, seed=seed, weight_decay=weight_decay
    )
    return router_solution(router, willingness, final_loss=losses[-1] if losses else None)
