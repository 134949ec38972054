"""aTLAS (Zhang et al., NeurIPS 2024, "Knowledge composition using task vectors with
learned anisotropic scaling"), https://arxiv.org/abs/2407.02880

Task vectors are combined block by block with learned coefficients ("anisotropic
scaling": every parameter block b of every task vector gets its own scale):

    θ(Λ) = θ_0 + Σ_t Σ_b λ_{t,b} τ_{t,b}           (b: each parameter tensor)
    min_Λ  mean_t CE(head_t(f(x; θ(Λ))), y),   (x, y) labelled examples of task t

Checked against the paper's abstract and summaries: linear combinations of parameter
blocks with different learned coefficients, few learnable parameters, supervised (or
unsupervised) objectives, and the task-arithmetic (task addition) setting where the
coefficients of all task vectors are learned jointly for the multi-task model. For task
addition the coefficients are learned on the tasks' validation data here (``split``).
Implementation choices (the paper's exact schedule was not confirmed): Λ starts at 0.3
(task arithmetic's default, so step 0 is task arithmetic), Adam with learning rate 1e-2,
200 steps, 16 examples per task per step. Unlike AdaMerging, Λ is unconstrained.
"""

from __future__ import annotations

from harness.coefficients import TaskVectorMixer, learn_on_labels
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

INIT = Param(0.3, help="initial value of every block coefficient", low=-2.0, high=2.0)
STEPS = Param(200, help="optimisation steps", low=0)
LR = Param(1e-2, help="Adam learning rate", low=0.0)
BATCH_SIZE = Param(16, help="labelled examples per task per step", low=1)
SPLIT = Param("validation", help="labelled split to learn on", choices=("validation", "train"))


@register_method(
    "atlas",
    family="merging",
    reference="https://arxiv.org/abs/2407.02880",
    params={"init": INIT, "steps": STEPS, "lr": LR, "batch_size": BATCH_SIZE, "split": SPLIT},
    smoke={"steps": 4},  # fewer steps/examples for the contract tests only
    description="Learn one scale per parameter block of every task vector on labelled data.",
)
def atlas(
    context: MethodContext, init: float, steps: int, lr: float, batch_size: int, split: str
) -> Solution:
    mixer = TaskVectorMixer(context)
    coefficients = mixer.initial("layer", init).requires_grad_(True)
    losses = learn_on_labels(
        context,
        mixer,
        coefficients,
        lambda raw: raw,
        split=split,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        desc="aTLAS",
    )
    learned = coefficients.detach()
    return Solution(
        state=mixer.state(learned),
        info={
            "coefficients": learned.cpu().tolist(),
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
        },
    )
