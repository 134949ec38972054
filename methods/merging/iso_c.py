"""ISO-C (Marczak et al., ICML 2025, "No Task Left Behind: Isotropic Model Merging with
Common and Task-Specific Subspaces").

For each 2-D weight matrix:

    Δ     = Σ_t τ_t = U Σ Vᵀ                  task arithmetic's sum and its SVD
    σ̄     = mean of the singular values diag(Σ)
    Δ_iso = σ̄ U Vᵀ                            flatten the spectrum (isotropic)
    θ     = θ_0 + α Δ_iso

ISO-C replaces all singular values of the summed task vector by their mean, keeping
its singular vectors, so every direction (and task) gets the same weight. Checked
against FusionBench's port of the authors' code
(``fusion_bench/method/isotropic_merging/iso_utils.py`` ``iso_c``): the SVD is of the
sum Σ_t τ_t for 2-D matrices, every other tensor is the mean of the task vectors, and
α = 1.0 is its default (``config/method/isotropic_merging/iso_c.yaml``). The authors'
repo (danielm1405/iso-merging, ``config/method/iso_c.yaml``) carries no α: it is chosen
on validation data, as the grid here does (0.5–2.0). Note: the TSV authors' repo
(AntoAndGar/task_singular_vectors ``src/utils/iso.py``) decomposes the mean instead,
which only rescales σ̄ by 1/T (absorbed by α).
"""

from __future__ import annotations

import torch

from harness.merging.stream import stack, summed_task_vectors, tensorwise
from harness.merging.subspace import gram, is_matrix, spectrum_of, svd
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

SCALING = Param(
    1.0,
    help="α, the scaling of the isotropic merged update",
    low=0.0,
    high=3.0,
    grid=[0.5, 0.8, 1.0, 1.2, 1.5, 2.0],
)


def isotropic(matrix: torch.Tensor) -> torch.Tensor:
    """σ̄ U Vᵀ of ``matrix`` = U Σ Vᵀ: the same singular vectors, a flat spectrum."""
    u, s, vh = svd(matrix)
    return s.mean() * (u @ vh)


def sum_gram(group: TensorGroup) -> torch.Tensor:
    """ΔᵀΔ of this slice of Δ = Σ_t τ_t (summed over a huge matrix's row slices)."""
    return gram(summed_task_vectors(group))


@register_method(
    "iso_c",
    family="merging",
    reference="https://arxiv.org/abs/2502.04959",
    params={"scaling": SCALING},
    description="Sum of task vectors with its singular values flattened to their mean.",
)
@tensorwise(statistic=sum_gram)
def iso_c(
    group: TensorGroup, scaling: float, statistic: torch.Tensor | None = None
) -> torch.Tensor:
    """A huge matrix (an LLM's embedding or head) is never decomposed whole: σ̄ U Vᵀ =
    σ̄ Δ V S⁻¹ Vᵀ, with V and S from ΔᵀΔ gathered over its row slices (same result up
    to float rounding, directions with S < 1e-6 S_max left out), slice by slice."""
    vectors = stack(group.task_vectors)
    if not is_matrix(group.base):
        return group.base + scaling * vectors.mean(dim=0)
    if statistic is None:
        return group.base + scaling * isotropic(vectors.sum(dim=0)).to(group.base.dtype)
    spectrum = spectrum_of(statistic)
    mean = float(spectrum.singular_values.mean())
    update = mean * (vectors.sum(dim=0).float() @ spectrum.isotropic_map().to(vectors.device))
    return group.base + scaling * update.to(group.base.dtype)
