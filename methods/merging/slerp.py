"""SLERP: spherical linear interpolation of two experts (Shoemake, SIGGRAPH 1985,
"Animating rotation with quaternion curves"; the standard two-model merge of LM merging
toolkits).

Per tensor, with a = θ_1, b = θ_2 flattened and Ω the angle between them,

    cos Ω = ⟨a, b⟩ / (‖a‖ ‖b‖)
    slerp(a, b; t) = sin((1 − t) Ω)/sin Ω · a + sin(t Ω)/sin Ω · b

t = 0 gives θ_1, t = 1 gives θ_2; nearly parallel tensors (sin Ω ≈ 0) fall back to
linear interpolation. t = 0.5 (the midpoint) is the default. Needs exactly two experts.
"""

from __future__ import annotations

import math

import torch

from harness.merging.stream import merge_stream
from harness.method import MethodContext, Solution, require_experts
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

T = Param(
    0.5,
    help="t, the position from expert 1 (0) to expert 2 (1)",
    low=0.0,
    high=1.0,
    grid=[0.3, 0.4, 0.5, 0.6, 0.7],
)
PARALLEL = 1e-6  # |sin Ω| below this: linear interpolation


def slerp_tensors(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    norm_a, norm_b = a.norm(), b.norm()
    if norm_a == 0 or norm_b == 0:
        return (1 - t) * a + t * b
    cosine = float(torch.clamp((a.flatten() @ b.flatten()) / (norm_a * norm_b), -1.0, 1.0))
    omega = math.acos(cosine)
    if abs(math.sin(omega)) < PARALLEL:
        return (1 - t) * a + t * b
    return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


@register_method(
    "slerp",
    family="merging",
    reference="https://doi.org/10.1145/325165.325242",
    params={"t": T},
    experts=2,
    description="Spherical interpolation between two experts' weights, tensor by tensor.",
)
def slerp(context: MethodContext, t: float) -> Solution:
    require_experts(context, 2, "slerp")

    def merge(group: TensorGroup) -> torch.Tensor:
        return slerp_tensors(group.experts[0], group.experts[1], t)

    return Solution(state=merge_stream(context, merge))
