"""Output ensemble: every expert runs on every input and their predictions are averaged.

    logits_task(x) = (1/T) Σ_t head_task(f_t(x))

The standard upper-cost baseline of multi-task model merging papers (e.g. the "ensemble"
rows of the Model Soups paper, https://arxiv.org/abs/2203.05482, which average the
models' logits). The suite applies the task's head to whatever the module returns, so
the module returns the features whose head output is the mean logits:

- an affine head (``nn.Linear``): head(mean_t f_t) = mean_t head(f_t) exactly, so the
  module averages the experts' features;
- a CLIP zero-shot head, s · normalise(f) Wᵀ (no bias): the module averages the
  *normalised* features g = mean_t normalise(f_t); then head(g) = mean_t head(f_t) / ‖g‖,
  the mean logits times a positive number per input, so predictions and accuracy are
  exactly those of logit averaging (only the logits' scale differs).

Storing T models is T − 1 models more than a merged model, counted as extra parameters;
inference costs T forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.method import MethodContext, Solution
from harness.registry import register_method


class FeatureEnsemble(nn.Module):
    """Mean of several backbones' features, L2-normalised first if ``normalize``."""

    def __init__(self, members: Sequence[nn.Module], normalize: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.normalize = normalize

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = torch.stack([member(inputs) for member in self.members])
        if self.normalize:
            features = nn.functional.normalize(features, dim=-1)
        return features.mean(dim=0)


@register_method(
    "ensemble",
    family="baseline",
    needs=("heads",),
    reference="https://arxiv.org/abs/2203.05482",
    description="Average the outputs of all experts (T forward passes per input).",
)
def ensemble(context: MethodContext) -> Solution:
    pool = context.pool
    built: dict[bool, FeatureEnsemble] = {}

    def module(task: str) -> nn.Module:
        normalize = not isinstance(context.head(task), nn.Linear)  # see the docstring
        if not built:
            members = [context.build_model(pool.expert_state(t)) for t in pool.tasks]
            built[normalize] = FeatureEnsemble(members, normalize).eval()
        elif normalize not in built:
            members = list(next(iter(built.values())).members)
            built[normalize] = FeatureEnsemble(members, normalize).eval()
        return built[normalize]

    return Solution(
        task_modules=module,
        extra_parameters=(len(pool.tasks) - 1) * pool.num_parameters(),
        info={"members": list(pool.tasks), "combination": "mean logits"},
    )
