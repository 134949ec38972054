"""Task arithmetic (Ilharco et al., ICLR 2023, "Editing models with task arithmetic").

    τ_t = θ_t − θ_0                 task vectors
    θ   = θ_0 + λ Σ_t τ_t           one scaling coefficient λ for the sum

The paper picks λ on held-out validation data from 0.05 … 1.0; λ = 0.3 is the value
reported for the eight-task CLIP benchmark. With λ = 1/N this is weight averaging.
"""

from __future__ import annotations

import torch

from harness.merging.stream import summed_task_vectors, tensorwise
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

SCALING = Param(
    0.3,
    help="λ, the scaling of the summed task vectors",
    low=0.0,
    high=2.0,
    grid=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
)


@register_method(
    "task_arithmetic",
    family="merging",
    reference="https://arxiv.org/abs/2212.04089",
    params={"scaling": SCALING},
    description="Add the scaled sum of task vectors to the base model.",
)
@tensorwise(rowwise=True)
def task_arithmetic(group: TensorGroup, scaling: float) -> torch.Tensor:
    return group.base + scaling * summed_task_vectors(group)
