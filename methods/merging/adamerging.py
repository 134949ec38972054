"""AdaMerging (Yang et al., ICLR 2024, "AdaMerging: Adaptive model merging for multi-task
learning"), https://arxiv.org/abs/2310.02575

Task arithmetic with learned coefficients, one per task (task-wise) or one per task and
layer (layer-wise), learned without labels by minimising the prediction entropy of the
merged model on unlabeled test inputs of every task:

    task-wise:   θ(λ) = θ_0 + Σ_t λ_t τ_t
    layer-wise:  θ(λ)^l = θ_0^l + Σ_t λ_t^l τ_t^l          (l: each parameter tensor)
    min_λ  Σ_t E_{x ∈ test_t} H(softmax(head_t(f(x; θ(λ)))))

Checked against the authors' code (EnnengYang/AdaMerging,
``src/main_layer_wise_adamerging.py``): the
pretrained weights keep coefficient 1, every task (and layer) coefficient starts at
``prior = 0.3`` (step 0 is task arithmetic with λ = 0.3), Adam with lr 1e-3, betas
(0.9, 0.999), no weight decay, 500 iterations; each iteration sums over tasks the mean
softmax entropy of unlabeled test batches of 16 (``batch_size=16``). Coefficients are
used clamped to [0, 1]. Layer-wise is the paper's main variant and the default here.
FusionBench's ``config/method/adamerging/clip.yaml`` has the same lr, init and batch
size (its max_steps is 1000). Test *labels* are never read.

Deviations: the authors clamp in the forward pass (``torch.clamp`` of the raw
parameter), here the coefficients are projected onto [0, 1] after each step; their loop
reads two batches per task per iteration (``if i > 0: break`` after the second), i.e.
32 inputs per task per step, here ``batch_size`` = 16 inputs per task per step.
"""

from __future__ import annotations

import torch

from harness.merging.coefficients import TaskVectorMixer, cycle, entropy, heads, optimise
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

GRANULARITY = Param(
    "layer", help="task: one λ per task; layer: one λ per task and layer", choices=("task", "layer")
)
INIT = Param(0.3, help="initial value of every coefficient", low=0.0, high=1.0)
LR = Param(1e-3, help="Adam learning rate", low=0.0)
STEPS = Param(500, help="optimisation steps", low=0)
BATCH_SIZE = Param(16, help="unlabeled test inputs per task per step", low=1)


def unlabeled_stream(context: MethodContext, task: str, batch_size: int):
    """Unlabeled test inputs of ``task``, batch after batch, forever."""
    return cycle(lambda: context.unlabeled_batches(task, "test", batch_size=batch_size))


@register_method(
    "adamerging",
    family="merging",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/2310.02575",
    params={
        "granularity": GRANULARITY,
        "init": INIT,
        "lr": LR,
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
    },
    smoke={"steps": 4},  # fewer steps/examples for the contract tests only
    description="Learn task- or layer-wise merging coefficients by test-time entropy minimisation.",
)
def adamerging(
    context: MethodContext, granularity: str, init: float, lr: float, steps: int, batch_size: int
) -> Solution:
    mixer = TaskVectorMixer(context)
    task_heads = heads(context, mixer.tasks)
    coefficients = mixer.initial(granularity, init).requires_grad_(True)
    streams = {task: unlabeled_stream(context, task, batch_size) for task in mixer.tasks}

    def loss(step: int) -> torch.Tensor:
        total = torch.zeros((), device=context.device)
        for task in mixer.tasks:
            features = mixer.forward(coefficients, next(streams[task]))
            total = total + entropy(task_heads[task](features))
        return total

    def clip() -> None:
        coefficients.clamp_(0.0, 1.0)

    losses = optimise(
        [coefficients],
        loss,
        steps=steps,
        lr=lr,
        progress=context.progress,
        desc="adamerging",
        project=clip,
    )
    learned = coefficients.detach()
    return Solution(
        state=mixer.state(learned),
        info={
            "granularity": granularity,
            "coefficients": learned.cpu().tolist(),
            "entropy_first": losses[0] if losses else None,
            "entropy_last": losses[-1] if losses else None,
        },
    )
