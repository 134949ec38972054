"""Model Stock (Jang et al., ECCV 2024, "Model Stock: All we need is just a few
fine-tuned models").

Per layer (tensor), with k fine-tuned models and the pretrained anchor θ_0:

    cos θ = mean over pairs i < j of cos(τ_i, τ_j)
    t     = k cos θ / (1 + (k − 1) cos θ)
    θ     = t · (1/k) Σ_i θ_i + (1 − t) · θ_0

The interpolation ratio t comes from the angle between fine-tuned weights measured from
the pretrained weights, per layer, and the merged weights move from the average toward
the pretrained anchor; no hyperparameters. The authors' repository (naver-ai/model-stock)
holds only a README ("code is under internal review"), so the check is against
FusionBench's port (``fusion_bench/method/model_stock/model_stock.py``, from the
authors' notebook example): per parameter tensor, cos θ of (θ_1 − θ_0, θ_2 − θ_0), t =
k cos θ / ((k − 1) cos θ + 1), θ = t · mean + (1 − t) θ_0, as above. For k > 2 that port
averages the pairwise *angles* and takes the cosine of the mean angle; this file
averages the pairwise cosines (the paper's derivation assumes equal pairwise angles, so
both coincide there; which one the paper prescribes for unequal angles was not
confirmed). With k = 1 (or identical experts, cos θ = 1) t = 1. A negative mean cosine
(no shared direction, outside the paper's derivation) is clamped to 0, giving θ_0; the
port does not clamp.
"""

from __future__ import annotations

import itertools

import torch

from harness.merging.stream import stack, tensorwise
from harness.registry import register_method
from harness.weights.pool import TensorGroup


def interpolation_ratio(vectors: list[torch.Tensor]) -> float:
    k = len(vectors)
    if k == 1:
        return 1.0
    cosines = []
    for a, b in itertools.combinations(vectors, 2):
        denominator = a.norm() * b.norm()
        cosines.append(float((a.flatten() @ b.flatten()) / denominator) if denominator else 0.0)
    return _ratio(k, cosines)


def _ratio(k: int, cosines: list[float]) -> float:
    cosine = min(max(sum(cosines) / len(cosines), 0.0), 1.0)
    return k * cosine / (1 + (k - 1) * cosine)


def inner_products(group: TensorGroup) -> torch.Tensor:
    """⟨τ_i, τ_j⟩ of one tensor (or row slice) in float64: sums over slices to the whole
    tensor's, from which the cosines follow."""
    vectors = stack(group.task_vectors).flatten(1).double()
    return vectors @ vectors.T


def ratio_from_inner_products(gram: torch.Tensor) -> float:
    """``interpolation_ratio`` from the task vectors' inner products."""
    k = gram.shape[0]
    if k == 1:
        return 1.0
    norms = gram.diagonal().sqrt()
    cosines = []
    for i, j in itertools.combinations(range(k), 2):
        denominator = float(norms[i] * norms[j])
        cosines.append(float(gram[i, j]) / denominator if denominator else 0.0)
    return _ratio(k, cosines)


@register_method(
    "model_stock",
    family="merging",
    reference="https://arxiv.org/abs/2403.19522",
    description="Average of experts pulled toward the base by their per-layer angle.",
)
@tensorwise(statistic=inner_products)
def model_stock(group: TensorGroup, statistic: torch.Tensor | None = None) -> torch.Tensor:
    if statistic is None:
        t = interpolation_ratio(group.task_vectors)
    else:  # a row slice of a huge matrix: the cosines of the whole tensor
        t = ratio_from_inner_products(statistic)
    return t * stack(group.experts).mean(dim=0) + (1 - t) * group.base
