"""Simple weight averaging (Wortsman et al., 2022, "Model soups": the uniform soup).

θ = (1/N) Σ_t θ_t
"""

from __future__ import annotations

import torch

from harness.merging.stream import stack, tensorwise
from harness.registry import register_method
from harness.weights.pool import TensorGroup


@register_method(
    "weight_average",
    family="merging",
    reference="https://arxiv.org/abs/2203.05482",
    description="Uniform average of the experts' weights.",
)
@tensorwise(rowwise=True)
def weight_average(group: TensorGroup) -> torch.Tensor:
    return stack(group.experts).mean(dim=0)
