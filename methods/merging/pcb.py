"""PCB-Merging (Du et al., NeurIPS 2024, "Parameter Competition Balancing for Model
Merging").

For N task vectors of one layer (tensor), with Norm a standardisation over the layer's
entries and Softmax over them:

    intra-balancing:  β_intra,i = Softmax(N · Norm(τ_i ⊙ τ_i))
    inter-balancing:  β_inter,i = Σ_j Softmax(Norm(τ_i ⊙ τ_j))
    β_i  = β_intra,i ⊙ β_inter,i
    drop: β̂_i = β_i on the top r fraction of β_i's entries, 0 elsewhere
    τ_m  = Σ_i β̂_i ⊙ τ_i / Σ_i β̂_i
    θ    = θ_0 + λ τ_m

The equations above are the paper's method section as this file states them; its text
could not be re-read in this session. What was checked is the authors' code
(duguodong7/pcb-merging, ``pcb-merging.py`` ``PCB_merge``), which differs in details:
it works on the whole flattened model (not per tensor), clamps |τ| at the 0.01% / 99.99%
quantiles first and merges the clamped τ; Norm is min-max scaling; intra = exp(N ·
Norm(|τ_i|)²) (Softmax without its constant normaliser); inter = tanh(τ_i ⊙ Σ_j τ_j)
instead of Σ_j Softmax(Norm(τ_i ⊙ τ_j)); the kept top-r scores are min-max rescaled
(the threshold maps to 0) before the weighted mean. The harness keeps the paper's
equations, per tensor (the streaming unit), with Norm = (x − mean)/std. Defaults: r =
0.1 is ``PCB_merge``'s default pcb_ratio (their ViT script with evolutionary λ search
uses 0.05; both are in the grid); λ = 1.0 lies in their range (the script searches
per-task λ in [0.8, 1.3] starting at 1.0), grid 0.3–1.5.
"""

from __future__ import annotations

import torch

from harness.merging.sparsify import top_fraction_mask
from harness.merging.stream import stack, tensorwise
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

RATIO = Param(
    0.1,
    help="r, the kept fraction of each task's highest balancing scores",
    low=0.001,
    high=1.0,
    grid=[0.05, 0.1, 0.2],
)
SCALING = Param(
    1.0,
    help="λ, the scaling of the balanced task vector",
    low=0.0,
    high=3.0,
    grid=[0.3, 0.5, 0.7, 1.0, 1.2, 1.5],
)


def _normalize(values: torch.Tensor) -> torch.Tensor:
    """Standardise over every entry but dim 0 (tasks first)."""
    flat = values.flatten(1)
    std = flat.std(dim=1, keepdim=True, unbiased=False)
    out = (flat - flat.mean(dim=1, keepdim=True)) / torch.where(std > 0, std, 1.0)
    return out.view(values.shape)


def _softmax(values: torch.Tensor) -> torch.Tensor:
    return torch.softmax(values.flatten(1), dim=1).view(values.shape)


def balancing_scores(vectors: torch.Tensor) -> torch.Tensor:
    """β_i = β_intra,i ⊙ β_inter,i for task vectors stacked along dim 0."""
    count = vectors.shape[0]
    intra = _softmax(count * _normalize(vectors * vectors))
    inter = torch.zeros_like(vectors)
    for j in range(count):
        inter += _softmax(_normalize(vectors * vectors[j : j + 1]))
    return intra * inter


def pcb_merge(vectors: torch.Tensor, ratio: float) -> torch.Tensor:
    scores = balancing_scores(vectors)
    kept = torch.stack([score * top_fraction_mask(score, ratio) for score in scores])
    weight = kept.sum(dim=0)
    merged = (kept * vectors).sum(dim=0)
    return torch.where(weight > 0, merged / torch.where(weight > 0, weight, 1.0), 0.0)


@register_method(
    "pcb",
    family="merging",
    reference="https://arxiv.org/abs/2410.02396",
    params={"scaling": SCALING, "ratio": RATIO},
    description="Intra- and inter-task balancing scores, drop low scores, weighted mean.",
)
@tensorwise
def pcb(group: TensorGroup, scaling: float, ratio: float) -> torch.Tensor:
    return group.base + scaling * pcb_merge(stack(group.task_vectors), ratio)
