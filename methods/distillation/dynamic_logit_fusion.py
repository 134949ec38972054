"""Dynamic logit fusion: an inference-time reference for the distillation family (Fan et
al., NeurIPS 2024, "On Giant's Shoulders: Effortless Weak to Strong by Dynamic Logits
Fusion", https://arxiv.org/abs/2406.15480).

    per decoding step:  P̃ = softmax( M^L + Σ_t α_t (M^S_t − M^S) )
    α = argmin over the search  Σ_t [ (KL(P̃‖P) − KL(Q_t‖Q))² + (KL(P‖P̃) − KL(Q‖Q_t))² ]

(:mod:`harness.distillation.logit_fusion`). Nothing is trained: the experts' knowledge
reaches the answer through their logits at every token, so the model kept at inference
is the base plus every expert, and each token costs n_experts + 1 forward passes.
It is the "no training, pay at inference" end of the distillation trade-off that
``fusellm`` (pay once in training, one model at inference) sits at the other end of.

In minimath (and any suite whose experts are fine-tunes of the base) the "large" model
is the base itself, the same size as the small experts' base: M^L = M^S, so P = Q, and
α_t = 1 on one expert reproduces that expert's distribution exactly. The paper's
setting (a larger model of the same vocabulary) needs a second base, which the suites
here do not have.

Paper defaults kept: α searched in [0, 2] in steps of 0.1 (``alpha_max``, ``alpha_step``),
one expert's α at a time (the paper's multi-task search); greedy decoding as the suite
asks for. The record's ``extra_parameters`` counts the experts kept beside the base, and
``method_info`` the forward passes per token (the inference cost).
"""

from __future__ import annotations

from harness.distillation.logit_fusion import LogitFusionLM
from harness.errors import HarnessError
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method


@register_method(
    "dynamic_logit_fusion",
    family="distillation",
    needs=("lm",),
    reference="https://arxiv.org/abs/2406.15480",
    params={
        "alpha_max": Param(2.0, help="the largest α searched per expert", low=0.0),
        "alpha_step": Param(0.1, help="the α search's step", low=0.001),
    },
    description="Inference-time reference: base logits plus experts' offsets, α per token.",
)
def dynamic_logit_fusion(context: MethodContext, alpha_max: float, alpha_step: float) -> Solution:
    steps = int(round(alpha_max / alpha_step))
    if steps < 1:
        raise HarnessError(f"alpha_max ({alpha_max}) must be at least one alpha_step")
    grid = tuple(round(alpha_step * step, 6) for step in range(steps + 1))
    base = context.build_model(context.pool.base_state()).requires_grad_(False)
    experts = [
        context.build_model(context.pool.expert_state(task)).requires_grad_(False)
        for task in context.pool.tasks
    ]
    module = LogitFusionLM(large=base, small=base, experts=experts, grid=grid).eval()
    per_model = sum(p.numel() for p in base.parameters())
    info = {
        "inference_models": len(experts) + 1,
        "forward_passes_per_token": module.forward_passes_per_token,
        "large_model": "the base itself (same size as the experts' base)",
        "alpha_grid": [grid[0], grid[-1], len(grid)],
        "experts": list(context.pool.tasks),
    }
    return Solution(
        task_modules=lambda task: module,
        extra_parameters=len(experts) * per_model,
        info=info,
    )
