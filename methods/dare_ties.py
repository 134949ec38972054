"""DARE + TIES-Merging (Yu et al., ICML 2024, "Language Models are Super Mario").

    τ̃_t = DARE_p(τ_t)                         random drop with rate p, rescale 1/(1 − p)
    γ   = sgn(Σ_t τ̃_t)                         TIES sign election
    τ_m = disjoint mean of the τ̃_t agreeing with γ
    θ   = θ_0 + λ τ_m

The paper uses DARE as a plug-in before TIES-Merging; DARE's random drop takes the
place of TIES' magnitude trim (the kept fraction is 1 − p), then TIES' elect and
disjoint-mean steps run unchanged (``methods.ties.elect_and_disjoint_mean``). Defaults:
p = 0.9 (see ``dare_ta``), λ = 0.3 (TIES' CLIP default).
"""

from __future__ import annotations

import torch

from harness.merging import stack, tensorwise
from harness.pool import TensorGroup
from harness.registry import register_method
from methods.dare_ta import DROP, dare_vectors
from methods.task_arithmetic import SCALING
from methods.ties import elect_and_disjoint_mean


@register_method(
    "dare_ties",
    family="merging",
    reference="https://arxiv.org/abs/2311.03099",
    params={"scaling": SCALING, "drop": DROP},
    description="DARE (random drop and rescale) then TIES sign election and disjoint mean.",
)
@tensorwise
def dare_ties(group: TensorGroup, scaling: float, drop: float) -> torch.Tensor:
    return group.base + scaling * elect_and_disjoint_mean(stack(dare_vectors(group, drop)))
