"""MagMax (Marczak et al., ECCV 2024, "MagMax: Leveraging Model Merging for Seamless
Continual Learning").

    τ_max[j] = τ_{t*}[j]  with  t* = argmax_t |τ_t[j]|     (per parameter j)
    θ        = θ_0 + λ τ_max

Each parameter takes the task-vector entry of largest magnitude, sign included.
Checked against the authors' code (danielm1405/magmax, ``merge_8datasets.py``):
``merge_max_abs`` is applied with the single scaling coefficient 0.5 in the eight-dataset
setting (their commented-out search spans 0.05–1.0), so λ = 0.5 is the default here;
FusionBench's ``config/method/magmax/magmax.yaml`` cites the same script and value.
"""

from __future__ import annotations

import torch

from harness.merging import kernels
from harness.merging.stream import stack, tensorwise
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

SCALING = Param(
    0.5,
    help="λ, the scaling of the max-magnitude task vector",
    low=0.0,
    high=2.0,
    grid=[0.3, 0.5, 0.7, 1.0],
)


def max_magnitude(vectors: torch.Tensor) -> torch.Tensor:
    """Per entry, the value of largest magnitude along dim 0 (tasks first)."""
    index = vectors.abs().argmax(dim=0, keepdim=True)
    return vectors.gather(0, index).squeeze(0)


@register_method(
    "magmax",
    family="merging",
    reference="https://arxiv.org/abs/2407.06322",
    params={"scaling": SCALING},
    description="Per parameter, the task-vector entry of largest magnitude.",
)
@tensorwise(rowwise=True)
def magmax(group: TensorGroup, scaling: float) -> torch.Tensor:
    if kernels.use_kernels(group.base):  # one fused sweep on a CPU: the same numbers
        return kernels.fused(kernels.max_magnitude_merge, group.base, group.experts, scaling)
    return group.base + scaling * max_magnitude(stack(group.task_vectors))
