"""Model Stock (Jang et al., ECCV 2024, "Model Stock: All we need is just a few
fine-tuned models").

Per layer (tensor), with k fine-tuned models and the pretrained anchor θ_0:

    cos θ = mean over pairs i < j of cos(τ_i, τ_j)
    t     = k cos θ / (1 + (k − 1) cos θ)
    θ     = t · (1/k) Σ_i θ_i + (1 − t) · θ_0

From the paper (our reading of its method section; in this session only the abstract or
other projects' configs could be re-checked, see Sources): the interpolation ratio t
comes from the angle between fine-tuned weights measured from the pretrained weights,
per layer, and the merged weights move from the average toward the pretrained anchor. No
hyperparameters. With k = 1 (or identical experts, cos θ = 1) t = 1. A negative mean
cosine (no shared direction, outside the paper's derivation) is clamped to 0, giving
θ_0.

Sources: none re-checked in this session beyond the title.
"""

from __future__ import annotations

import itertools

import torch

from harness.merging import stack, tensorwise
from harness.pool import TensorGroup
from harness.registry import register_method


def interpolation_ratio(vectors: list[torch.Tensor]) -> float:
    k = len(vectors)
    if k == 1:
        return 1.0
    cosines = []
    for a, b in itertools.combinations(vectors, 2):
        denominator = a.norm() * b.norm()
        cosines.append(float((a.flatten() @ b.flatten()) / denominator) if denominator else 0.0)
    cosine = min(max(sum(cosines) / len(cosines), 0.0), 1.0)
    return k * cosine / (1 + (k - 1) * cosine)


@register_method(
    "model_stock",
    family="merging",
    reference="https://arxiv.org/abs/2403.19522",
    description="Average of experts pulled toward the base by their per-layer angle.",
)
@tensorwise
def model_stock(group: TensorGroup) -> torch.Tensor:
    t = interpolation_ratio(group.task_vectors)
    return t * stack(group.experts).mean(dim=0) + (1 - t) * group.base
