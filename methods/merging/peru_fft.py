"""PERU-FFT (Jiang et al., 2023, "Effective and Parameter-Efficient Reusing Fine-Tuned
Models"): a merged model plus a sparse task-specific vector per task.

    θ_m  = θ_0 + λ Σ_t τ_t                     task arithmetic
    δ_t  = θ_t − θ_m                           what the merge lost for task t
    θ̂_t  = θ_m + top_m%(δ_t)                   keep the m% largest |δ_t| of the whole model

From the paper's abstract and method as summarised here (not re-checked: neither the
paper's text nor an official repository could be reached with this session's tools):
PERU-FFT first merges the fully fine-tuned models by task arithmetic and then, per task,
prunes the difference between the fine-tuned and the merged model to its top-m%
magnitudes (the paper reports m = 1%, 5%, 10%); no training. The top-m% is exact over
the whole model, found in two streaming passes
(``harness.merging.task_vectors.magnitude_thresholds``). Defaults: m = 10%, λ = 0.3.

Storage: per task the kept values plus a 1-bit position mask over P entries.

Sources: the paper's abstract (arXiv 2310.01886). Searches of the code and pages
corpora found no official PERU code or config, so the defaults (see above) remain
unverified choices.
"""

from __future__ import annotations

import math

import torch

from harness.merging.stream import summed_task_vectors
from harness.merging.task_states import streamed_task_states
from harness.merging.task_vectors import keep_top_magnitudes, magnitude_thresholds
from harness.method import MethodContext, Solution, mask_parameters
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.task_arithmetic import SCALING

DENSITY = Param(
    0.1,
    help="m, the kept fraction of each task's θ_t − θ_merged",
    low=0.0001,
    high=1.0,
    grid=[0.01, 0.05, 0.1],
)


@register_method(
    "peru_fft",
    family="merging",
    reference="https://arxiv.org/abs/2310.01886",
    params={"scaling": SCALING, "density": DENSITY},
    description="Task arithmetic plus each task's top-m% of θ_t − θ_merged (sparse).",
)
def peru_fft(context: MethodContext, scaling: float, density: float) -> Solution:
    pool = context.pool

    def merged(group: TensorGroup) -> torch.Tensor:
        return group.base + scaling * summed_task_vectors(group)

    def residuals(group: TensorGroup) -> list[torch.Tensor]:
        model = merged(group)
        return [expert - model for expert in group.experts]

    thresholds = magnitude_thresholds(
        pool,
        density,
        progress=context.progress,
        vectors=residuals,
        seed=context.seed,
        rowwise=True,
    )

    def build(group: TensorGroup, index: int) -> torch.Tensor:
        model = merged(group)
        task = pool.tasks[index]
        return model + keep_top_magnitudes(group.experts[index] - model, thresholds[task])

    count = pool.num_parameters()
    kept = math.ceil(density * count)
    return Solution(
        task_states=streamed_task_states(context, build, rowwise=True),
        extra_parameters=len(pool.tasks) * (kept + mask_parameters(count)),
        info={"thresholds": thresholds},
    )
