"""TALL masks (Wang et al., ICML 2024, "Localizing Task Information for Improved Model
Merging and Compression").

A merged multi-task vector τ_MTL = Σ_t τ_t (task arithmetic's) plus one binary mask per
task that localises the task's information in it:

    m_t = 1{ |τ_t| > λ · |τ_MTL − τ_t| }          (element-wise, strict)
    θ_t = θ_0 + α · m_t ⊙ τ_MTL                    (the model that serves task t)

Checked against the authors' code (nik-dim/tall_masks, ``src/utils/tallmask_utils.py``
``generate_task_masks`` and ``construct_tall_mask``, ``src/eval/aggregation.py``): the
mask is ``|θ_0 − θ_t| > |θ_MTL − θ_t| · λ`` (strict; this file used ≥ before, which
differs only at ties such as entries where every τ_t is 0) with θ_MTL = θ_0 + Σ_t τ_t
(task arithmetic's sum, unscaled, k = 100 so no top-k filtering); λ is chosen per task on
validation data from {0.2, 0.3, 0.4, 0.5, 0.6}; the masked τ_MTL is applied with
scaling 1.0. Here one λ for all tasks is chosen from that range (default 0.4, its
middle), and α = 1 is the authors' value (grid 0.5–1.0).

Storage: θ_0 and τ_MTL (one model more than a single merged model) and N binary masks
(P bits each, ``mask_parameters``). Task states are built lazily, tensor by tensor.
"""

from __future__ import annotations

import torch

from harness.merging import kernels
from harness.merging.stream import stack
from harness.merging.task_states import streamed_task_states
from harness.method import MethodContext, Solution, mask_parameters
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

LAMBDA = Param(
    0.4,
    help="λ, how strongly a task's update must dominate the rest of τ_MTL to be kept",
    low=0.0,
    high=10.0,
    grid=[0.2, 0.3, 0.4, 0.5, 0.6],
)
SCALING = Param(
    1.0,
    help="α, the scaling of the masked multi-task vector",
    low=0.0,
    high=2.0,
    grid=[0.5, 0.7, 1.0],
)


def tall_masks(vectors: torch.Tensor, tall_lambda: float) -> torch.Tensor:
    """Boolean masks m_t (tasks first) of task vectors stacked along dim 0."""
    total = vectors.sum(dim=0)
    return vectors.abs() > tall_lambda * (total - vectors).abs()


@register_method(
    "tall_masks",
    family="merging",
    reference="https://arxiv.org/abs/2405.07813",
    params={"tall_lambda": LAMBDA, "scaling": SCALING},
    description="Task arithmetic's merged vector with a per-task binary mask (TALL).",
)
def tall_masks_method(context: MethodContext, tall_lambda: float, scaling: float) -> Solution:
    def build(group: TensorGroup, index: int) -> torch.Tensor:
        if kernels.use_kernels(group.base):  # one fused sweep on a CPU: the same numbers
            merge = kernels.tall_mask_merge
            return kernels.fused(merge, group.base, group.experts, tall_lambda, scaling, task=index)
        vectors = stack(group.task_vectors)
        masks = tall_masks(vectors, tall_lambda)
        return group.base + scaling * masks[index] * vectors.sum(dim=0)

    pool = context.pool
    count = pool.num_parameters()
    return Solution(
        task_states=streamed_task_states(context, build, rowwise=True),
        extra_parameters=count + len(pool.tasks) * mask_parameters(count),
    )
