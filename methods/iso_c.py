"""ISO-C (Marczak et al., ICML 2025, "No Task Left Behind: Isotropic Model Merging with
Common and Task-Specific Subspaces").

For each 2-D weight matrix:

    Δ     = Σ_t τ_t = U Σ Vᵀ                  task arithmetic's sum and its SVD
    σ̄     = mean of the singular values diag(Σ)
    Δ_iso = σ̄ U Vᵀ                            flatten the spectrum (isotropic)
    θ     = θ_0 + α Δ_iso

From the paper (our reading of its method section; in this session only the abstract or
other projects' configs could be re-checked, see Sources): ISO-C replaces all singular
values of the summed task vector by their mean, keeping its singular vectors, so every
direction (and task) gets the same weight; α is chosen on validation data (default 1.0,
grid 0.5–2.0). Non-matrix tensors use the mean of the task vectors (the averaging
fall-back).

Sources: α = 1.0 is also FusionBench's ISO-C default.
"""

from __future__ import annotations

import torch

from harness.merging import stack, tensorwise
from harness.pool import TensorGroup
from harness.registry import Param, register_method
from harness.subspace import is_matrix, svd

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


@register_method(
    "iso_c",
    family="merging",
    reference="https://arxiv.org/abs/2502.04959",
    params={"scaling": SCALING},
    description="Sum of task vectors with its singular values flattened to their mean.",
)
@tensorwise
def iso_c(group: TensorGroup, scaling: float) -> torch.Tensor:
    vectors = stack(group.task_vectors)
    if not is_matrix(group.base):
        return group.base + scaling * vectors.mean(dim=0)
    return group.base + scaling * isotropic(vectors.sum(dim=0)).to(group.base.dtype)
