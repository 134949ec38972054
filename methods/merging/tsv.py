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

from collections.abc import Iterator

import torch

from harness.merging.stream import stack
from harness.merging.subspace import GramSpectrum, gram, is_matrix, orthogonalize, truncated
from harness.merging.timing import timed
from harness.method import MethodContext, Solution
from harness.progress import progress_bar
from harness.registry import Param, register_method
from harness.weights.pool import ExpertPool, TensorGroup

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


def tsv_tensor(group: TensorGroup, scaling: float, fraction: float) -> torch.Tensor:
    """The merge of one whole tensor."""
    vectors = group.task_vectors
    if not is_matrix(group.base):
        return group.base + scaling * stack(vectors).mean(dim=0)
    return group.base + scaling * tsv_merge_matrix(vectors, fraction).to(group.base.dtype)


def _huge_matrix(
    pool: ExpertPool, name: str, seed: int, scaling: float, fraction: float
) -> Iterator[tuple[TensorGroup, torch.Tensor]]:
    """TSV-M of a matrix too large to hold whole for every expert, in three passes over
    its row slices: each task's Gram matrix τ_tᵀτ_t gives V_t and Σ_t (so U_t,k = τ_t
    V_t,k Σ_t,k⁻¹ one slice at a time); the Gram matrix of U = [U_1,k … U_T,k] gives its
    polar factor U⊥ = U (UᵀU)^(−1/2); V is small and orthogonalised whole. The same
    merge up to float rounding, directions with Σ < 1e-6 Σ_max left out."""
    grams: list[torch.Tensor] = []
    for group in pool.groups([name], seed, rowwise=True):
        with timed("statistics"):
            parts = [gram(vector) for vector in group.task_vectors]
            grams = parts if not grams else [a + b for a, b in zip(grams, parts)]
    keep = max(1, int(fraction * min(pool.shape(name)) / len(grams)))
    spectra = [GramSpectrum(matrix) for matrix in grams]
    del grams
    values = torch.cat([spectrum.singular_values[:keep] for spectrum in spectra])
    right = torch.cat([spectrum.vectors[:, :keep] for spectrum in spectra], dim=1)
    to_left = (right / values.clamp(min=values.max() * 1e-6)).float()  # τ_t ↦ U_t,k
    right_orthogonal = orthogonalize(right.float())
    values = values.float()

    def left(group: TensorGroup) -> torch.Tensor:
        columns = [
            vector.float() @ to_left[:, index * keep : (index + 1) * keep].to(vector.device)
            for index, vector in enumerate(group.task_vectors)
        ]
        return torch.cat(columns, dim=1)

    left_gram = None
    for group in pool.groups([name], seed, rowwise=True):
        with timed("statistics"):
            part = gram(left(group))
            left_gram = part if left_gram is None else left_gram + part
    assert left_gram is not None
    whitening = GramSpectrum(left_gram).isotropic_map()
    for group in pool.groups([name], seed, rowwise=True):
        with timed("merge"):
            device = group.base.device
            update = ((left(group) @ whitening.to(device)) * values.to(device)) @ (
                right_orthogonal.T.to(device)
            )
            result = group.base + scaling * update.to(group.base.dtype)
        yield group, result


@register_method(
    "tsv",
    family="merging",
    reference="https://arxiv.org/abs/2412.00081",
    params={"scaling": SCALING, "fraction": FRACTION},
    description="Per-task singular vectors (1/T of the rank each), orthogonalised, summed.",
)
def tsv(context: MethodContext, scaling: float, fraction: float) -> Solution:
    """Tensor by tensor; a matrix too large to hold whole for every expert (an LLM's
    embedding or head) is merged from Gram matrices over its row slices."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in progress_bar(pool.mergeable_names(), desc="merge", enabled=context.progress):
            if pool.is_huge(name):
                for group, result in _huge_matrix(pool, name, context.seed, scaling, fraction):
                    pool.place(merged, group, result)
                continue
            for group in pool.groups([name], context.seed):
                with timed("merge"):
                    result = tsv_tensor(group, scaling, fraction)
                pool.place(merged, group, result)
    return Solution(state=pool.output_state(merged))


tsv.tensor_merge = tsv_tensor  # type: ignore[attr-defined]
