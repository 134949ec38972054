"""Output ensemble: every expert runs on every input and their predictions are averaged.

    logits_task(x) = (1/T) Σ_t head_task(f_t(x))

The standard upper-cost baseline of multi-task model merging papers (e.g. the "ensemble"
rows of the Model Soups paper, https://arxiv.org/abs/2203.05482, which average the
models' logits). Scored with one task's head, averaging the logits of T experts is
averaging their features before the head whenever the head is affine (a linear
classifier, as every suite's frozen head here): head(mean f_t) = mean head(f_t). So the
module returned per task outputs the mean of the experts' features, and the suite's
head then yields exactly the mean logits. Storing T models is T − 1 models more than a
merged model, counted as extra parameters; inference costs T forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.method import MethodContext, Solution
from harness.registry import register_method


class FeatureEnsemble(nn.Module):
    """Mean of several backbones' features (= mean logits under an affine head)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(inputs) for member in self.members]).mean(dim=0)


@register_method(
    "ensemble",
    family="baseline",
    reference="https://arxiv.org/abs/2203.05482",
    description="Average the outputs of all experts (T forward passes per input).",
)
def ensemble(context: MethodContext) -> Solution:
    pool = context.pool
    shared: dict[str, FeatureEnsemble] = {}

    def module(task: str) -> nn.Module:
        if "all" not in shared:
            members = [context.build_model(pool.expert_state(t)) for t in pool.tasks]
            shared["all"] = FeatureEnsemble(members).eval()
        return shared["all"]

    return Solution(
        task_modules=module,
        extra_parameters=(len(pool.tasks) - 1) * pool.num_parameters(),
        info={"members": list(pool.tasks), "combination": "mean logits (affine heads)"},
    )
