"""EMR-Merging (Huang et al., NeurIPS 2024, "EMR-Merging: Tuning-Free High-Performance
Model Merging"): Elect, Mask, Rescale.

    Elect:   γ_uni = sgn(Σ_t τ_t)
             ε_uni = max_t { |τ_t| : sgn(τ_t) = γ_uni }       (element-wise)
             τ_uni = γ_uni ⊙ ε_uni
    Mask:    M_t   = 1{ τ_t ⊙ τ_uni > 0 }                      (per task)
    Rescale: λ_t   = Σ |τ_t| / Σ |M_t ⊙ τ_uni|                  (sums over the whole model)
    Serve:   θ_t   = θ_0 + λ_t · M_t ⊙ τ_uni

The unified vector takes the largest magnitude among the entries agreeing with the
elected sign; masks keep the positions where a task agrees with τ_uni; the rescaler
matches the task vector's total absolute value; no hyperparameters. Checked against the
authors' code (harveyhuang18/EMR_Merging, ``merge_vit/src/main_emr_merging.py``
``emr_merge``): elect, mask and the per-task reconstruction θ_0 + λ_t · M_t ⊙ τ_uni are
as above. Two details differ there and are not followed here: the elected sign is
``(mean > 0) * 2 − 1`` (an entry whose sum is 0 gets −1; here sgn gives 0 and τ_uni is 0
there), and λ_t divides sums over tensors of per-tensor *means* of |τ_t| and |M_t ⊙
τ_uni| (each tensor weighs equally), where this file uses the sums over all entries of
the model as in the equation above; the paper's text could not be re-read in this
session to settle which one it states. λ_t needs whole-model sums, computed in one
streaming pass (``harness.merging.task_vectors.stream_sums``); task states are then built
lazily.

Storage: θ_0 and τ_uni (one model more than a single merged model), N binary masks (P
bits each) and N scalars.
"""

from __future__ import annotations

import torch

from harness.merging import kernels
from harness.merging.stream import stack
from harness.merging.task_states import streamed_task_states
from harness.merging.task_vectors import stream_sums
from harness.method import MethodContext, Solution, mask_parameters
from harness.registry import register_method
from harness.weights.pool import TensorGroup


def unified_task_vector(vectors: torch.Tensor) -> torch.Tensor:
    """τ_uni of task vectors stacked along dim 0 (tasks first)."""
    sign = torch.sign(vectors.sum(dim=0))
    agreeing = torch.where(torch.sign(vectors) == sign, vectors.abs(), torch.zeros_like(vectors))
    return sign * agreeing.max(dim=0).values


def emr_masks(vectors: torch.Tensor, unified: torch.Tensor) -> torch.Tensor:
    return vectors * unified > 0


def rescaler_sums(vectors: torch.Tensor) -> torch.Tensor:
    """Per task, [Σ|τ_t|, Σ|M_t ⊙ τ_uni|] over this tensor (summed over the model later)."""
    unified = unified_task_vector(vectors)
    masked = emr_masks(vectors, unified) * unified.abs()
    flat = vectors.flatten(1).abs().double().sum(dim=1)
    return torch.stack([flat, masked.flatten(1).double().sum(dim=1)], dim=1)


def group_rescaler_sums(group: TensorGroup) -> torch.Tensor:
    """``rescaler_sums`` of one tensor group; on a CPU one fused sweep (the same sums in
    another order, to float64 rounding)."""
    if kernels.use_kernels(group.base):
        return torch.from_numpy(kernels.emr_sums(*kernels.as_arrays(group.base, group.experts)))
    return rescaler_sums(stack(group.task_vectors))


def rescalers(sums: torch.Tensor) -> torch.Tensor:
    """λ_t = Σ|τ_t| / Σ|M_t ⊙ τ_uni| (1 where the masked sum is zero)."""
    numerator, denominator = sums[:, 0], sums[:, 1]
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1e-300), 1.0)


@register_method(
    "emr",
    family="merging",
    reference="https://arxiv.org/abs/2405.17461",
    description="Unified task vector plus per-task sign masks and rescalers (tuning free).",
)
def emr(context: MethodContext) -> Solution:
    pool = context.pool
    sums = stream_sums(
        pool,
        group_rescaler_sums,
        seed=context.seed,
        progress=context.progress,
        desc="EMR rescalers",
        rowwise=True,
    )
    scales = rescalers(sums)

    def build(group: TensorGroup, index: int) -> torch.Tensor:
        if kernels.use_kernels(group.base):  # one fused sweep on a CPU: the same numbers
            scale = float(scales[index])
            return kernels.fused(kernels.emr_merge, group.base, group.experts, index, scale)
        vectors = stack(group.task_vectors)
        unified = unified_task_vector(vectors)
        mask = emr_masks(vectors[index], unified)
        return group.base + float(scales[index]) * mask * unified

    count = pool.num_parameters()
    tasks = len(pool.tasks)
    return Solution(
        task_states=streamed_task_states(context, build, rowwise=True),
        extra_parameters=count + tasks * mask_parameters(count) + tasks,
        info={"rescalers": dict(zip(pool.tasks, map(float, scales)))},
    )
