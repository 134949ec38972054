"""TIES-Merging (Yadav et al., NeurIPS 2023, "Resolving interference when merging models").

    1. Trim:  keep the top-k% entries of each task vector by magnitude (k = 20), over
              the whole model; zero the rest → τ̂_t
    2. Elect: γ = sgn(Σ_t τ̂_t), the sign with the larger total mass per parameter
    3. Merge: τ_m = disjoint mean: average of the τ̂_t whose sign agrees with γ (and
              that are non-zero) per parameter
              θ = θ_0 + λ τ_m

λ = 0.3 is the value used on the eight-task CLIP benchmark (FusionBench); the paper
selects λ on validation data.
"""

from __future__ import annotations

import torch

from harness.merging.stream import merge_stream, stack
from harness.merging.task_vectors import keep_top_magnitudes, magnitude_thresholds
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.task_arithmetic import SCALING

DENSITY = Param(0.2, help="k, the kept fraction of each task vector", low=0.001, high=1.0)


def elect_and_disjoint_mean(trimmed: torch.Tensor) -> torch.Tensor:
    """Steps 2–3 on trimmed task vectors stacked along dim 0 (tasks first)."""
    elected_sign = torch.sign(trimmed.sum(dim=0))
    agrees = (torch.sign(trimmed) == elected_sign) & (trimmed != 0)
    kept_sum = (trimmed * agrees).sum(dim=0)
    count = agrees.sum(dim=0).clamp(min=1)
    return kept_sum / count


@register_method(
    "ties",
    family="merging",
    reference="https://arxiv.org/abs/2306.01708",
    params={"scaling": SCALING, "density": DENSITY},
    description="Trim to top-k% magnitudes, elect signs by mass, disjoint mean.",
)
def ties(context: MethodContext, scaling: float, density: float) -> Solution:
    thresholds = magnitude_thresholds(context.pool, density, progress=context.progress)

    def merge(group: TensorGroup) -> torch.Tensor:
        trimmed = stack(
            [
                keep_top_magnitudes(vector, thresholds[task])
                for task, vector in zip(group.tasks, group.task_vectors)
            ]
        )
        return group.base + scaling * elect_and_disjoint_mean(trimmed)

    merged = merge_stream(context, merge, rowwise=True)
    return Solution(state=merged, info={"thresholds": thresholds})
