"""MLP router (RouterBench's MLP baseline, Hu et al., 2024, https://arxiv.org/abs/2403.12031).

A two-layer perceptron on the (standardised) query embedding predicts every model's
score at once:

    u(x) = σ(W₂ ReLU(W₁ x + b₁) + b₂) ∈ [0, 1]^M

fitted to the train scores with binary cross-entropy (soft labels) by AdamW. Route:
argmax u − λ·ĉ. Implementation choices (RouterBench does not fix them): hidden 128,
lr 1e-3, weight decay 1e-4, 400 steps of 128 queries.
"""

from __future__ import annotations

from torch import nn

from harness.method import MethodContext, Solution, hash_seed
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, router_solution, training_table
from harness.routing.training import PredictorRouter

HIDDEN = Param(128, help="hidden width", low=1)
STEPS = Param(400, help="AdamW steps", low=0)
LR = Param(1e-3, help="learning rate", low=0.0, grid=[1e-3, 3e-3])
BATCH = Param(128, help="queries per step", low=1)


@register_method(
    "mlp_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={
        "hidden": HIDDEN,
        "steps": STEPS,
        "lr": LR,
        "batch_size": BATCH,
        "willingness": WILLINGNESS,
    },
    needs=("outcomes",),
    smoke={"steps": 60},
    description="A two-layer MLP predicts each model's score from the query embedding.",
)
def mlp_router(
    context: MethodContext, hidden: int, steps: int, lr: float, batch_size: int, willingness: float
) -> Solution:
    train = training_table(context)
    seed = hash_seed(context.seed, "mlp_router")
    import torch

    torch.manual_seed(seed)
    dim, models = train.features.shape[1], len(train.models)
    net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, models))
    router = PredictorRouter(train, net)
    losses = router.fit(
        train, steps=steps, lr=lr, batch_size=batch_size, seed=seed, weight_decay=1e-4
    )
    return router_solution(router, willingness, final_loss=losses[-1] if losses else None)
