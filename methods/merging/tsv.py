"""TSV-Merge (Gargiulo et al., CVPR 2025, "Task Singular Vectors: Reducing Task
Interference in Model Merging").

For each 2-D weight matrix, with T tasks and r = min(m, n):

    τ_t = U_t Σ_t V_tᵀ                         SVD of each task's layer update
    keep k = ⌊f · r / T⌋ components per task   (f = 1: 1/T of the spectrum each)
    U = [U_1,k … U_T,k],  Σ = diag(Σ_1,k … Σ_T,k),  V = [V_1,k … V_T,k]
    U⊥ = P_U Q_Uᵀ, V⊥ = P_V Q_Vᵀ               whitening: the orthogonal polar factor
                                               of U = P_U S_U Q_Uᵀ (same for V)
    θ  = θ_0 + α U⊥ Σ V⊥ᵀ

Checked against the authors' code (AntoAndGar/task_singular_vectors,
``src/utils/TSVM_utils.py`` ``compute_and_sum_svd_mem_reduction``): for each 2-D weight
(CLIP's ``text_projection`` excluded) each task keeps its top int(r / T) singular
triplets, the concatenated U and V are replaced by their orthogonal polar factors
(computed as P Qᵀ from an SVD of each) and the merged layer is U⊥ diag(Σ) V⊥ᵀ; every
non-matrix tensor is the running mean of the task vectors, as here. f = 1.0 reproduces
int(r / T). α = 1.0: the update is added unscaled by default; their runner
(``config/config.yaml``: specify_lambda None, n_eval_points 31) can also pick α on
validation data, as the grid here does.
"""

from __future__ import annotations

import torch

from harness.merging.stream import stack, tensorwise
from harness.merging.subspace import is_matrix, orthogonalize, truncated
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

SCALING = Param(
    1.0,
    help="α, the scaling of the merged layer updates",
    low=0.0,
    high=3.0,
    grid=[0.5, 0.7, 1.0, 1.2, 1.5],
)
FRACTION = Param(
    1.0,
    help="f, the fraction of the rank shared out (each task keeps f·r/T components)",
    low=0.01,
    high=1.0,
    grid=[],
)


def tsv_merge_matrix(vectors: list[torch.Tensor], fraction: float = 1.0) -> torch.Tensor:
    rank = min(vectors[0].shape)
    keep = max(1, int(fraction * rank / len(vectors)))
    parts = [truncated(vector, keep) for vector in vectors]
    u = torch.cat([part[0] for part in parts], dim=1)
    s = torch.cat([part[1] for part in parts])
    v = torch.cat([part[2].T for part in parts], dim=1)
    return (orthogonalize(u) * s) @ orthogonalize(v).T


@register_method(
    "tsv",
    family="merging",
    reference="https://arxiv.org/abs/2412.00081",
    params={"scaling": SCALING, "fraction": FRACTION},
    description="Per-task singular vectors (1/T of the rank each), orthogonalised, summed.",
)
@tensorwise
def tsv(group: TensorGroup, scaling: float, fraction: float) -> torch.Tensor:
    vectors = group.task_vectors
    if not is_matrix(group.base):
        return group.base + scaling * stack(vectors).mean(dim=0)
    return group.base + scaling * tsv_merge_matrix(vectors, fraction).to(group.base.dtype)
