"""Greedy soup (Wortsman et al., ICML 2022, "Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time"),
https://arxiv.org/abs/2203.05482 (Recipe 1, "GreedySoup").

    sort the experts by their held-out validation accuracy, best first
    soup ← {best expert}
    for each next expert θ_i:
        if ValAcc(average(soup ∪ {θ_i})) ≥ ValAcc(average(soup)):  soup ← soup ∪ {θ_i}
    return average(soup)                       (uniform average of the soup's weights)

The recipe as recalled from the paper (not re-read in this session): ingredients
sorted by held-out accuracy, an ingredient kept only if the soup's held-out accuracy
does not drop, the soup the uniform weight average. In this multi-task harness the
merged model serves every task, so "validation accuracy" is the mean over tasks of each
task's validation accuracy with its own head. Validation labels are read; test labels never are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from harness.evaluation.classification import classification_accuracy
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

VALIDATION_LIMIT = Param(0, help="validation examples per task used to score soups (0: all)", low=0)


def uniform_soup(context: MethodContext, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
    """(1/|S|) Σ_{t∈S} θ_t, streamed tensor by tensor."""
    pool = context.pool
    merged = {}
    with torch.no_grad():
        for name in pool.mergeable_names():
            merged[name] = torch.stack([pool.expert_tensor(t, name) for t in tasks]).mean(0)
    return pool.output_state(merged)


def validation_accuracy(
    context: MethodContext, state: dict[str, torch.Tensor], limit: int | None
) -> float:
    """Mean over tasks of the validation accuracy (percent) of one model."""
    model = context.build_model(state)
    scores = [
        classification_accuracy(
            model,
            context.head(task),
            context.labeled_batches(task, "validation", limit=limit),
            device=context.device,
            progress=False,
        )["accuracy"]
        for task in context.tasks
    ]
    return float(np.mean(scores))


def soup_accuracy(context: MethodContext, members: Sequence[str], limit: int | None) -> float:
    """Validation accuracy of the uniform soup of ``members`` (one member: that expert)."""
    if len(members) == 1:
        return validation_accuracy(context, context.pool.expert_state(members[0]), limit)
    return validation_accuracy(context, uniform_soup(context, members), limit)


@register_method(
    "greedy_soup",
    family="merging",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/2203.05482",
    params={"validation_limit": VALIDATION_LIMIT},
    smoke={"validation_limit": 16},  # fewer steps/examples for the contract tests only
    description="Add experts best-first to a uniform soup while validation accuracy holds.",
)
def greedy_soup(context: MethodContext, validation_limit: int) -> Solution:
    limit = validation_limit or None
    pool = context.pool
    individual = {task: soup_accuracy(context, [task], limit) for task in pool.tasks}
    order = sorted(pool.tasks, key=lambda task: -individual[task])  # stable on ties
    soup = [order[0]]
    best = individual[order[0]]
    trajectory = [{"expert": order[0], "score": best, "added": True}]
    for task in order[1:]:
        score = soup_accuracy(context, soup + [task], limit)
        added = score >= best
        trajectory.append({"expert": task, "score": score, "added": added})
        if added:
            soup.append(task)
            best = score
    return Solution(
        state=uniform_soup(context, soup),
        info={"individual": individual, "soup": soup, "trajectory": trajectory},
    )
