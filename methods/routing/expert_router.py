"""Per-sample expert routing: each input goes to one whole fine-tuned expert, chosen by a
learned router that never sees the task id at test time. A simplified, WEMoE-style
learned router (Tang et al., ICML 2024, "Merging multi-task models via weight-ensembling
mixture of experts", https://arxiv.org/abs/2402.00433).

    router:     r(x) = softmax(R(f(x; θ_0))) ∈ Δ^T, R a 2-layer MLP on the pretrained
                model's features, trained to tell which task an input comes from
                (cross-entropy on the tasks' validation inputs; the task id is a label
                there only)
    inference:  model(x) = f(x; θ_{t*}),  t* = argmax_t r_t(x)      (per input, top-1)

so on a mixed-task stream the model never needs the task id, and the suite's scoring
(one batch per task with that task's head) only scores the chosen expert's features.
Compared with the task-id oracle (``individual``: each task's own expert), Twin (shared
merge plus routed low-rank parts) and EMR/TALL (told the task). Deviations from WEMoE:
whole experts, top-1, instead of layer-wise weight ensembles of task vectors in the
MLPs; supervised on validation task ids instead of entropy minimisation on unlabelled
test inputs (the paper's method is methods/routing/wemoe.py). Stored beyond one model:
every expert and the pretrained model the router reads, plus the router
(``extra_parameters``).
The router's features and training follow twin.py's router (hidden 256, Adam lr 1e-2,
300 steps of 64).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from methods.routing.twin import train_router

STEPS = Param(300, help="router training steps", low=0)
LR = Param(1e-2, help="router Adam learning rate", low=0.0)
HIDDEN = Param(256, help="router hidden width", low=1)
BATCH_SIZE = Param(64, help="router training batch size", low=1)


class ExpertRouted(nn.Module):
    """Pretrained features → router → the chosen expert's features, per input."""

    def __init__(self, base: nn.Module, router: nn.Module, experts: list[nn.Module]) -> None:
        super().__init__()
        self.base = base
        self.router = router
        self.experts = nn.ModuleList(experts)
        self.last_choice: torch.Tensor | None = None  # [B] of the last batch (analysis)

    @torch.no_grad()
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        choice = self.router(self.base(inputs).float()).argmax(dim=-1)
        self.last_choice = choice
        out: torch.Tensor | None = None
        for index, expert in enumerate(self.experts):
            rows = torch.nonzero(choice == index).squeeze(1)
            if rows.numel() == 0:
                continue
            features = expert(inputs[rows])
            if out is None:
                out = features.new_zeros((inputs.shape[0], *features.shape[1:]))
            out[rows] = features
        assert out is not None
        return out


@register_method(
    "expert_router",
    family="routing",
    needs=("batches", "features"),
    reference="https://arxiv.org/abs/2402.00433",
    params={"steps": STEPS, "lr": LR, "hidden": HIDDEN, "batch_size": BATCH_SIZE},
    smoke={"steps": 20},
    description="Each input to one whole expert, picked by a router on pretrained features.",
)
def expert_router(
    context: MethodContext, steps: int, lr: float, hidden: int, batch_size: int
) -> Solution:
    tasks = context.tasks
    base = context.build_model(context.pool.base_state()).eval()
    router, accuracy = train_router(
        context, base, tasks, hidden=hidden, steps=steps, lr=lr, batch_size=batch_size
    )
    experts = [context.build_model(context.pool.expert_state(task)).eval() for task in tasks]
    model = ExpertRouted(base, router, experts).eval()
    size = sum(p.numel() for p in base.parameters())
    # every expert and the pretrained model the router reads, beyond one model
    stored = len(tasks) * size + sum(p.numel() for p in router.parameters())
    return Solution(
        task_modules=lambda task: model,
        extra_parameters=int(stored),
        # per input: one pass of the pretrained model for the router, one of the expert
        info={"router_validation_accuracy": accuracy, "models_per_query": 2},
    )
