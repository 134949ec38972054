"""PERU-LoRA (Jiang et al., 2023, "Effective and Parameter-Efficient Reusing Fine-Tuned
Models"): each task's update reduced to low rank by SVD.

    τ_t = U Σ Vᵀ  (per 2-D weight matrix)
    θ̂_t = θ_0 + U_q Σ_q V_qᵀ                  the best rank-q approximation

From the paper's abstract and method as summarised here (not re-checked: neither the
paper's text nor an official repository could be reached with this session's tools):
PERU-LoRA keeps the top-q singular components of each task's weight update (the paper
reduces LoRA updates, q much smaller than the LoRA rank; here the experts' full task
vectors are reduced the same way). Non-matrix tensors (biases, norms) are small and kept
exactly. Default q = 16 (grid 4–32).

Storage: per task q(m + n + 1) numbers per matrix (factors and singular values, with
q clipped to the matrix rank) plus the non-matrix task-vector entries.

Sources: the paper's abstract (arXiv 2310.01886). Searches of the code and pages
corpora found no official PERU code or config, so the defaults (see above) remain
unverified choices.
"""

from __future__ import annotations

import torch

from harness.merging.subspace import gram, is_matrix, low_rank, spectrum_of
from harness.merging.task_states import streamed_task_states
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

RANK = Param(
    16,
    help="q, the rank kept of each task's 2-D weight updates",
    low=1,
    high=100000,
    grid=[4, 8, 16, 32],
)


@register_method(
    "peru_lora",
    family="merging",
    reference="https://arxiv.org/abs/2310.01886",
    params={"rank": RANK},
    description="Each task's update reduced to rank q by SVD (per 2-D weight).",
)
def peru_lora(context: MethodContext, rank: int) -> Solution:
    pool = context.pool

    def build(
        group: TensorGroup, index: int, statistic: torch.Tensor | None = None
    ) -> torch.Tensor:
        vector = group.task_vectors[index]
        if not is_matrix(group.base) and statistic is None:
            return group.experts[index]
        if statistic is None:
            return group.base + low_rank(vector, rank).to(group.base.dtype)
        # a row slice of a huge matrix: U_q Σ_q V_qᵀ = τ V_q V_qᵀ, V_q from τᵀτ
        top = spectrum_of(statistic).vectors[:, :rank].float().to(vector.device)
        return group.base + ((vector.float() @ top) @ top.T).to(group.base.dtype)

    def task_gram(group: TensorGroup, index: int) -> torch.Tensor:
        return gram(group.task_vectors[index])

    per_task = 0
    for name in pool.mergeable_names():
        shape = pool.shape(name)
        if len(shape) == 2 and min(shape) > 1:
            per_task += min(rank, min(shape)) * (shape[0] + shape[1] + 1)
        else:
            size = 1
            for dim in shape:
                size *= dim
            per_task += size
    return Solution(
        task_states=streamed_task_states(context, build, statistic=task_gram),
        extra_parameters=len(pool.tasks) * per_task,
    )
