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

A matrix too large to decompose whole for every expert (an LLM's vocabulary-sized
embedding or head, ``ExpertPool.is_huge``; tall, r = n) is merged from Gram matrices
summed over its row slices (``sliced_iso_cts``): V and Σ of Δ from ΔᵀΔ, C_t = U_cmᵀ τ_t
from Δᵀτ_t, each τ̄_t's spectrum from τ_tᵀτ_t and C_t, the polar factor of [U_cm, U_1 …
U_T] from its Gram matrix, all gathered in two passes over the slices, then a third
that writes the update: the same merge up to float rounding (directions with σ < 10⁻⁶
σ_max are left out, as for ISO-C), with memory bounded by a slice per expert and a few
n × n matrices per expert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from harness.merging.stream import stack, summed_task_vectors
from harness.merging.subspace import (
    GramSpectrum,
    gram,
    is_matrix,
    orthogonalize,
    svd,
    truncated,
)
from harness.merging.timing import timed
from harness.method import MethodContext, Solution
from harness.progress import progress_bar
from harness.registry import Param, register_method
from harness.weights.pool import ExpertPool, TensorGroup
from methods.merging.iso_c import SCALING

COMMON = Param(
    0.8,
    help="c, the fraction of the rank given to the common subspace",
    low=0.0,
    high=1.0,
    grid=[],
)


def subspace_sizes(rank: int, tasks: int, common: float) -> tuple[int, int]:
    """(k, s): the common subspace's size and each task's, k + T s = r."""
    per_task = min(round((rank - int(common * rank)) / tasks), rank // tasks)
    return rank - per_task * tasks, per_task


def iso_cts_matrix(
    vectors: list[torch.Tensor], common: float, total: torch.Tensor | None = None
) -> torch.Tensor:
    """σ̄ U* V*ᵀ of one whole matrix; ``total`` is Σ_t τ_t when the caller has it (an 8B
    MLP matrix's stacked experts would cost 1.9 GB more to sum here)."""
    rank = min(vectors[0].shape)
    total = stack(vectors).sum(dim=0) if total is None else total
    u, s, vh = svd(total)
    k, per_task = subspace_sizes(rank, len(vectors), common)
    us, ss, vs = [u[:, :k]], [s[:k]], [vh[:k].T]
    # With as many rows as the rank (a square or wide matrix), U is a whole orthonormal
    # basis: τ̄_t = C Cᵀ τ_t for its trailing columns C, and τ̄_t's SVD is C times that of
    # the (m − k)-row Cᵀ τ_t, a fifth of the rows at c = 0.8 (an SVD of 408 × 8,192
    # instead of 2,048 × 8,192 for Llama-1B's down projection).
    complement = u[:, k:] if u.shape[0] == u.shape[1] else None
    if per_task > 0:
        for vector in vectors:
            if complement is not None:
                u_t, s_t, vh_t = truncated(complement.T @ vector.float(), per_task)
                u_t = complement @ u_t
            else:
                outside = vector.float() - us[0] @ (us[0].T @ vector.float())
                u_t, s_t, vh_t = truncated(outside, per_task)
            us.append(u_t)
            ss.append(s_t)
            vs.append(vh_t.T)
    u_all = orthogonalize(torch.cat(us, dim=1))
    v_all = orthogonalize(torch.cat(vs, dim=1))
    return torch.cat(ss).mean() * (u_all @ v_all.T)


def iso_cts_tensor(group: TensorGroup, scaling: float, common: float) -> torch.Tensor:
    vectors = group.task_vectors
    if not is_matrix(group.base):
        return group.base + scaling * stack(vectors).mean(dim=0)
    update = iso_cts_matrix(vectors, common, summed_task_vectors(group))
    return group.base + scaling * update.to(group.base.dtype)


def _top(spectrum: GramSpectrum, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(V, S, 1/S) of the top ``count`` directions; 1/S is 0 on numerically absent ones."""
    values = spectrum.singular_values[:count]
    inverse = torch.where(spectrum.kept[:count], 1.0 / values.clamp(min=1e-300), 0.0)
    return spectrum.vectors[:, :count], values, inverse


def sliced_iso_cts(
    slices: Callable[[], Iterator[tuple[TensorGroup, torch.Tensor]]],
    common: float,
) -> Iterator[tuple[TensorGroup, torch.Tensor]]:
    """ISO-CTS's update σ̄ U* V*ᵀ of a tall matrix, row slice by row slice, from Gram
    matrices gathered in two passes over ``slices()`` ((group, task vectors [T, m_s, n]
    in float32) in row order); a third pass yields each slice's update.

    Every factor is a fixed map of the slice's Z = [Δ, Y] with Y = [τ_1 V_1 … τ_T V_T]:
    U_cm = Δ V_cm Σ_cm⁻¹ and U_t = (Y_t − U_cm D_t) Σ_t⁻¹ with C_t = U_cmᵀ τ_t and D_t =
    C_t V_t, so A = [U_cm, U_1 … U_T] = Z M (M: ``to_left``) and AᵀA = Mᵀ (ZᵀZ) M.
    Pass 1 gathers τ_tᵀτ_t and Δᵀτ_t (whose sum is ΔᵀΔ, and which give C_t = Σ_cm⁻¹
    V_cmᵀ Δᵀτ_t and ΔᵀY_t = Δᵀτ_t V_t), pass 2 the small YᵀY; the polar factor and V*ᵀ
    fold into one map R (``to_update``), so that a slice's update is Z R. Only the Gram
    products run over the slices' rows."""
    task_grams = cross_grams = None
    for _, vectors in slices():  # pass 1: τ_tᵀτ_t and Δᵀτ_t
        with timed("statistics"):
            total = vectors.sum(dim=0)
            if task_grams is None or cross_grams is None:
                shape = (vectors.shape[0], vectors.shape[2], vectors.shape[2])
                task_grams = torch.zeros(shape, dtype=torch.float64)
                cross_grams = torch.zeros(shape, dtype=torch.float64)
            for index, vector in enumerate(vectors):
                task_grams[index] += gram(vector)
                cross_grams[index] += (total.T @ vector).double()
    assert task_grams is not None and cross_grams is not None
    tasks, rank = task_grams.shape[0], task_grams.shape[1]
    k, per_task = subspace_sizes(rank, tasks, common)
    sum_gram = cross_grams.sum(dim=0)  # ΔᵀΔ
    sum_gram = (sum_gram + sum_gram.T) / 2
    v_common, s_common, inverse_common = _top(GramSpectrum(sum_gram), k)
    to_common = v_common * inverse_common  # U_cm = Δ · to_common
    common_gram = to_common.T @ sum_gram @ to_common  # U_cmᵀ U_cm
    singular_values, right = [s_common], [v_common]
    projected, inverses, sum_by_task = [], [], []
    for index in range(tasks) if per_task > 0 else ():
        projection = to_common.T @ cross_grams[index]  # C_t = U_cmᵀ τ_t
        outside_gram = (  # τ̄_tᵀτ̄_t with τ̄_t = τ_t − U_cm C_t
            task_grams[index]
            - 2 * projection.T @ projection
            + projection.T @ common_gram @ projection
        )
        v_task, s_task, inverse_task = _top(GramSpectrum(outside_gram), per_task)
        singular_values.append(s_task)
        right.append(v_task)
        projected.append(projection @ v_task)  # D_t
        inverses.append(inverse_task)
        sum_by_task.append(cross_grams[index] @ v_task)  # ΔᵀY_t
    del task_grams, cross_grams

    def z_rows(vectors: torch.Tensor) -> torch.Tensor:  # Z = [Δ, Y] on a slice
        parts = [vectors.sum(dim=0).double()]
        parts += [vectors[index].double() @ v_task for index, v_task in enumerate(right[1:])]
        return torch.cat(parts, dim=1)

    width = per_task * (len(right) - 1)
    y_gram = torch.zeros(width, width, dtype=torch.float64)
    for _, vectors in slices() if width else ():  # pass 2: YᵀY
        with timed("statistics"):
            y_rows = z_rows(vectors)[:, rank:]
            y_gram += y_rows.T @ y_rows
    z_gram = torch.zeros(rank + width, rank + width, dtype=torch.float64)  # ZᵀZ
    z_gram[:rank, :rank] = sum_gram
    z_gram[rank:, rank:] = y_gram
    to_left = torch.zeros(rank + width, k + width, dtype=torch.float64)  # A = Z · to_left
    to_left[:rank, :k] = to_common
    if width:
        inverse_all = torch.cat(inverses)
        z_gram[:rank, rank:] = torch.cat(sum_by_task, dim=1)
        z_gram[rank:, :rank] = z_gram[:rank, rank:].T
        to_left[:rank, k:] = -(to_common @ torch.cat(projected, dim=1)) * inverse_all
        to_left[rank:, k:] = torch.diag(inverse_all)
    left_gram = to_left.T @ z_gram @ to_left  # AᵀA
    polar_map = GramSpectrum(left_gram).isotropic_map().double()  # A · it = U*
    v_star = orthogonalize(torch.cat(right, dim=1).float()).double()
    to_update = torch.cat(singular_values).mean() * (to_left @ polar_map @ v_star.T)
    for group, vectors in slices():  # pass 3: σ̄ U* V*ᵀ = Z R, slice by slice
        with timed("merge"):
            update = z_rows(vectors) @ to_update
        yield group, update.float()


@register_method(
    "iso_cts",
    family="merging",
    reference="https://arxiv.org/abs/2502.04959",
    params={"scaling": SCALING, "common": COMMON},
    description="Isotropic merge over a common subspace plus task-specific directions.",
)
def iso_cts(context: MethodContext, scaling: float, common: float) -> Solution:
    """Tensor by tensor; a huge tall matrix by ``sliced_iso_cts`` over its row slices."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in progress_bar(pool.mergeable_names(), desc="merge", enabled=context.progress):
            rows, columns = (pool.shape(name) + (0, 0))[:2]
            if not pool.is_huge(name) or rows < columns:
                for group in pool.groups([name], context.seed):
                    with timed("merge"):
                        result = iso_cts_tensor(group, scaling, common)
                    pool.place(merged, group, result)
                continue
            for group, update in sliced_iso_cts(_slices(pool, name, context.seed), common):
                pool.place(merged, group, group.base + scaling * update.to(group.base.dtype))
    return Solution(state=pool.output_state(merged))


def _slices(
    pool: ExpertPool, name: str, seed: int
) -> Callable[[], Iterator[tuple[TensorGroup, torch.Tensor]]]:
    def slices() -> Iterator[tuple[TensorGroup, torch.Tensor]]:
        for group in pool.groups([name], seed, rowwise=True):
            yield group, torch.stack([vector.float() for vector in group.task_vectors])

    return slices


iso_cts.tensor_merge = iso_cts_tensor  # type: ignore[attr-defined]
