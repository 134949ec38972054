"""Model Breadcrumbs (Davari & Belilovsky, ECCV 2024, "Model Breadcrumbs: Scaling
Multi-Task Model Merging with Sparse Masks").

Per layer (tensor) ℓ and task t, sort |τ_t^ℓ| and mask both tails:

    m_t^ℓ = 1 where the magnitude rank of τ_t^ℓ lies above the bottom β fraction (small,
            noisy updates) and below the top γ fraction (large outliers)
    θ     = θ_0 + α Σ_t m_t ⊙ τ_t

From the paper (our reading of its method section; in this session only the abstract or
other projects' configs could be re-checked, see Sources): the mask is built layer by
layer, removing both the smallest entries and the largest outliers; the paper's reported
setting keeps a band between β = 85% (bottom) and the top γ = 1%, with the merge
coefficient α tuned on validation. Defaults: β = 0.85, γ = 0.01, α = 0.3 (task
arithmetic's CLIP value).

Sources: the abstract (sparsification removes weight outliers and negligible
perturbations; no per-task tuning); β = 0.85, γ = 0.01 are still to verify.
"""

from __future__ import annotations

import torch

from harness.merging import tensorwise
from harness.pool import TensorGroup
from harness.registry import Param, register_method
from harness.sparsify import magnitude_band_mask
from methods.task_arithmetic import SCALING

BOTTOM = Param(
    0.85,
    help="β, the fraction of smallest-magnitude entries masked per tensor",
    low=0.0,
    high=0.99,
    grid=[0.8, 0.85, 0.9],
)
TOP = Param(
    0.01,
    help="γ, the fraction of largest-magnitude entries (outliers) masked per tensor",
    low=0.0,
    high=0.5,
    grid=[0.0, 0.01, 0.02],
)


@register_method(
    "breadcrumbs",
    family="merging",
    reference="https://arxiv.org/abs/2312.06795",
    params={"scaling": SCALING, "bottom": BOTTOM, "top": TOP},
    description="Mask both tails (small and outlier magnitudes) of each task vector, sum.",
)
@tensorwise
def breadcrumbs(group: TensorGroup, scaling: float, bottom: float, top: float) -> torch.Tensor:
    merged = torch.zeros_like(group.base)
    for vector in group.task_vectors:
        merged += vector * magnitude_band_mask(vector, bottom, top)
    return group.base + scaling * merged
