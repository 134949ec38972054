"""SLERP: spherical linear interpolation of two experts (Shoemake, SIGGRAPH 1985,
"Animating rotation with quaternion curves"; the standard two-model merge of LM merging
toolkits).

Per tensor, with a = θ_1, b = θ_2 flattened and Ω the angle between them,

    cos Ω = ⟨a, b⟩ / (‖a‖ ‖b‖)
    slerp(a, b; t) = sin((1 − t) Ω)/sin Ω · a + sin(t Ω)/sin Ω · b

t = 0 gives θ_1, t = 1 gives θ_2; t = 0.5 (the midpoint) is the default. Needs exactly
two experts.

Nearly parallel tensors fall back to linear interpolation (1 − t) a + t b when
|cos Ω| > 0.9995, the ``DOT_THRESHOLD`` of both reference implementations (mergekit
``merge_methods/slerp.py`` ``slerp``; FusionBench ``method/slerp/slerp_utils.py`` and
``config/method/slerp/slerp.yaml``). Most tensors of two fine-tunes of one base sit
above it (the parity check found this on real checkpoints) and are interpolated
linearly, as in mergekit; a smaller threshold would give different weights from the
tools users compare with. The cosine is computed in float32, as mergekit does (and
FusionBench, which keeps float64 tensors in float64). Deviation: when either tensor is
all zeros the result is linear here; the references skip normalising a vector of norm
≤ 1e-8 and so take the spherical branch with Ω = π/2 (sin(πt/2)·b when a = 0).
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
# |cos Ω| above this: linear interpolation (mergekit's and FusionBench's DOT_THRESHOLD)
DOT_THRESHOLD = 0.9995


def slerp_tensors(
    a: torch.Tensor,
    b: torch.Tensor,
    t: float,
    dot_threshold: float = DOT_THRESHOLD,
    products: torch.Tensor | None = None,
) -> torch.Tensor:
    """slerp(a, b; t) for one tensor pair; linear when |cos Ω| > ``dot_threshold`` or
    either tensor is zero (where Ω is undefined). ``products`` ([‖a‖², ‖b‖², ⟨a, b⟩] of
    the whole tensors) gives the angle when ``a`` and ``b`` are row slices of them."""
    if products is None:
        norm_a, norm_b = a.float().norm(), b.float().norm()
        dot = a.flatten().float() @ b.flatten().float()
    else:
        norm_a, norm_b, dot = products[0].sqrt(), products[1].sqrt(), products[2]
    if norm_a == 0 or norm_b == 0:
        return (1 - t) * a + t * b
    cosine = float(torch.clamp(dot / (norm_a * norm_b), -1.0, 1.0))
    if abs(cosine) > dot_threshold:
        return (1 - t) * a + t * b
    omega = math.acos(cosine)
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

    def merge(group: TensorGroup, statistic: torch.Tensor | None = None) -> torch.Tensor:
        return slerp_tensors(group.experts[0], group.experts[1], t, products=statistic)

    return Solution(state=merge_stream(context, merge, statistic=pair_products))


def pair_products(group: TensorGroup) -> torch.Tensor:
    """[‖a‖², ‖b‖², ⟨a, b⟩] of one tensor or row slice, in float64 (they add up over row
    slices, so a huge matrix's angle is found without holding it whole)."""
    a, b = (expert.flatten().double() for expert in group.experts[:2])
    return torch.stack([a @ a, b @ b, a @ b])
