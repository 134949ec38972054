"""Multi-teacher knowledge distillation with task-specific teachers: each task's inputs
are taught by that task's expert (BAM!, Clark et al., ACL 2019, "Born-Again Multi-Task
Networks for Natural Language Understanding", https://arxiv.org/abs/1907.04829; the loss
is Hinton et al.'s, https://arxiv.org/abs/1503.02531).

    L = (1/T) Σ_t E_{x ∈ train_t} τ² · KL( softmax(h_t(f_t(x))/τ) ‖ softmax(h_t(f(x; θ))/τ) )

f_t is task t's expert, f(·; θ) the single student, h_t the task's frozen head; the task
id picks teacher and head during training only. ``init`` = task_arithmetic or ties is
"merge then distil": the student starts from that registered merge.

Checked against the papers: BAM distils single-task teachers into one multi-task student
with each example taught by its own task's teacher (teacher annealing, which mixes in
gold labels over training, is not used: ``label_weight`` is a fixed mix instead, 0 by
default so no label is read); Hinton et al. scale the soft-target KL by τ². τ = 2 is our
choice: Hinton et al. found intermediate temperatures best for small students and no
multi-task KD paper fixes one for this setting.
"""

from __future__ import annotations

from harness.distillation.loop import distil
from harness.distillation.losses import kd_loss
from harness.distillation.params import SHARED_PARAMS, SMOKE, split
from harness.distillation.teachers import Teaching, own_expert
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

TEMPERATURE = Param(2.0, help="τ, the softmax temperature of teacher and student", low=0.01)


@register_method(
    "multi_teacher_kd",
    family="distillation",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/1907.04829",
    params={"temperature": TEMPERATURE, **SHARED_PARAMS},
    smoke=SMOKE,
    description="One student; each task's inputs distilled from its own expert (KL, τ²).",
)
def multi_teacher_kd(context: MethodContext, temperature: float, **shared) -> Solution:
    budget, optimiser, rest = split(shared)
    return distil(
        context,
        name="multi_teacher_kd",
        teaching=Teaching("logits", own_expert),
        loss=lambda student, teacher: kd_loss(student, teacher, temperature),
        budget=budget,
        optimiser=optimiser,
        **rest,
    )
