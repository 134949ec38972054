"""Matrix-factorisation router (RouteLLM's MF router, Ong et al., 2024,
https://arxiv.org/abs/2406.18665).

RouteLLM scores a (model, query) pair bilinearly: a learned embedding v_m per model,
the query embedding projected into the same space, and a linear read-out,

    δ(m, x) = w₂ᵀ (v_m ⊙ (W₁ x + b₁)) + b_m,      u_m(x) = σ(δ(m, x))

RouteLLM fits δ to pairwise preferences (strong vs weak wins); over an outcome table
the per-query score of every model is known, so it is fitted pointwise to the scores
with binary cross-entropy (soft labels), the same objective as the other learned
routers. Dimension 128 as RouteLLM; AdamW lr 3e-3, 400 steps of 128 queries (choices).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.method import MethodContext, Solution, hash_seed
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, router_solution, training_table
from harness.routing.training import PredictorRouter

DIM = Param(128, help="embedding dimension of models and projected queries", low=1)
STEPS = Param(400, help="AdamW steps", low=0)
LR = Param(3e-3, help="learning rate", low=0.0)


class Bilinear(nn.Module):
    """δ(m, x) for every model at once: [Q, D_in] → [Q, M]."""

    def __init__(self, dim_in: int, models: int, dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(dim_in, dim)
        self.models = nn.Parameter(torch.randn(models, dim) * dim**-0.5)
        self.readout = nn.Linear(dim, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(models))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joint = self.project(x)[:, None, :] * self.models[None, :, :]  # [Q, M, D]
        return self.readout(joint).squeeze(-1) + self.bias


@register_method(
    "mf_router",
    family="routing",
    reference="https://arxiv.org/abs/2406.18665",
    params={"dim": DIM, "steps": STEPS, "lr": LR, "willingness": WILLINGNESS},
    needs=("outcomes",),
    smoke={"steps": 60},
    description="Bilinear model embedding × projected query embedding predicts the score.",
)
def mf_router(
    context: MethodContext, dim: int, steps: int, lr: float, willingness: float
) -> Solution:
    train = training_table(context)
    seed = hash_seed(context.seed, "mf_router")
    torch.manual_seed(seed)
    router = PredictorRouter(train, Bilinear(train.features.shape[1], len(train.models), dim))
    losses = router.fit(train, steps=steps, lr=lr, batch_size=128, seed=seed, weight_decay=1e-4)
    return router_solution(router, willingness, final_loss=losses[-1] if losses else None)
