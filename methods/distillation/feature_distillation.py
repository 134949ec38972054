"""Feature (representation) distillation to each task's expert: the student's backbone
features on task t's inputs regress onto expert t's features (FitNets' hint loss, Romero
et al., ICLR 2015, https://arxiv.org/abs/1412.6550, applied at the backbone's output as
in knowledge amalgamation from several teachers).

    L = (1/T) Σ_t E_{x ∈ train_t} ‖ f(x; θ) − f_t(x) ‖² / D

f_t is task t's expert, f(·; θ) the single student, D the feature size (the mean squared
error). Matching features rather than logits makes the student agree with every expert
in the space all heads read, not only in the directions task t's head looks at.

Checked against the paper: FitNets regress a student layer onto a teacher layer through
a learned regressor when widths differ; here student and teachers share the architecture,
so the regressor is the identity and the hint layer is the backbone's output (the
features every head reads). Deviation: no second stage of logit KD (``label_weight``
can mix in train labels instead).
"""

from __future__ import annotations

from harness.distillation.loop import distil
from harness.distillation.losses import feature_loss
from harness.distillation.params import SHARED_PARAMS, SMOKE, split
from harness.distillation.teachers import Teaching, own_expert
from harness.method import MethodContext, Solution
from harness.registry import register_method


@register_method(
    "feature_distillation",
    family="distillation",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/1412.6550",
    params=dict(SHARED_PARAMS),
    smoke=SMOKE,
    description="One student whose features regress onto each task's expert features (MSE).",
)
def feature_distillation(context: MethodContext, **shared) -> Solution:
    budget, optimiser, rest = split(shared)
    return distil(
        context,
        name="feature_distillation",
        teaching=Teaching("features", own_expert),
        loss=feature_loss,
        budget=budget,
        optimiser=optimiser,
        **rest,
    )
