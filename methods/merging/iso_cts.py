"""ISO-CTS (Marczak et al., ICML 2025, "No Task Left Behind: Isotropic Model Merging with
Common and Task-Specific Subspaces").

For each 2-D weight matrix with r = min(m, n), T tasks, common fraction c:

    s = round((r − ⌊c r⌋) / T),  k = r − T s    (the common part takes the remainder)
    Δ = Σ_t τ_t = U Σ Vᵀ;    the common subspace U_cm = U[:, :k], V_cm
    τ̄_t = τ_t − U_cm U_cmᵀ τ_t                 each task outside the common subspace
    top-s singular triplets (U_t, Σ_t, V_t) of each τ̄_t
    U* = orth([U_cm, U_1 … U_T]),  V* = orth([V_cm, V_1 … V_T])   (polar factors)
    σ̄ = mean of all kept singular values [Σ[:k], Σ_1 … Σ_T]
    θ = θ_0 + α σ̄ U* V*ᵀ

ISO-CTS keeps the top singular directions of the summed task vector as a common
subspace, fills the rest of the rank with each task's most significant directions
orthogonal to it, orthogonalises the combined bases (polar factors, via SVD) and applies
ISO-C's flat spectrum. Checked against FusionBench's port of the authors' code
(``fusion_bench/method/isotropic_merging/iso_utils.py`` ``iso_cts``; the authors' repo
danielm1405/iso-merging ``config/method/iso_cts.yaml``: common_space_fraction 0.8, and
its README command ``method.common_space_fraction=0.8``): the common size is adjusted
so that the task-specific part divides evenly, s = round((r − ⌊c r⌋)/T) per task and k =
r − T s, so the kept directions fill exactly the rank r (this file used k = ⌊c r⌋ and
s = ⌊(r − k)/T⌋ before); the sum (not the mean) gives the common subspace; only the
left projection U_cm U_cmᵀ is removed; non-matrix tensors are averaged. Defaults: c =
0.8 and α = 1.0 (FusionBench's ``config/method/isotropic_merging/iso_cts.yaml``; the
authors' configs carry no α, which their runner picks on validation data).
"""

from __future__ import annotations

import torch

from harness.merging.stream import stack, tensorwise
from harness.merging.subspace import is_matrix, orthogonalize, svd, truncated
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.iso_c import SCALING

COMMON = Param(
    0.8,
    help="c, the fraction of the rank given to the common subspace",
    low=0.0,
    high=1.0,
    grid=[],
)


def iso_cts_matrix(vectors: list[torch.Tensor], common: float) -> torch.Tensor:
    rank = min(vectors[0].shape)
    total = torch.stack(vectors).sum(dim=0)
    u, s, vh = svd(total)
    per_task = min(round((rank - int(common * rank)) / len(vectors)), rank // len(vectors))
    k = rank - per_task * len(vectors)  # the common part absorbs the remainder
    us, ss, vs = [u[:, :k]], [s[:k]], [vh[:k].T]
    if per_task > 0:
        for vector in vectors:
            outside = vector.float() - us[0] @ (us[0].T @ vector.float())
            u_t, s_t, vh_t = truncated(outside, per_task)
            us.append(u_t)
            ss.append(s_t)
            vs.append(vh_t.T)
    u_all = orthogonalize(torch.cat(us, dim=1))
    v_all = orthogonalize(torch.cat(vs, dim=1))
    return torch.cat(ss).mean() * (u_all @ v_all.T)


@register_method(
    "iso_cts",
    family="merging",
    reference="https://arxiv.org/abs/2502.04959",
    params={"scaling": SCALING, "common": COMMON},
    description="Isotropic merge over a common subspace plus task-specific directions.",
)
@tensorwise
def iso_cts(group: TensorGroup, scaling: float, common: float) -> torch.Tensor:
    vectors = group.task_vectors
    if not is_matrix(group.base):
        return group.base + scaling * stack(vectors).mean(dim=0)
    return group.base + scaling * iso_cts_matrix(vectors, common).to(group.base.dtype)
