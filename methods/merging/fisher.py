"""Fisher merging (Matena & Raffel, NeurIPS 2022, "Merging models with Fisher-weighted
averaging"), https://arxiv.org/abs/2111.09832

Each expert's parameters are weighted by their diagonal Fisher information, a Laplace
approximation of the expert's posterior:

    F_t = (1/N) Σ_{x ∈ task t} E_{y∼p_t(y|x)} [(∇_θ log p_t(y|x))²]     (per coordinate)
    θ*  = Σ_t λ_t F_t θ_t / Σ_t λ_t F_t,     λ_t = 1/T,  F_t ← max(F_t, ε)

p_t is expert t with task t's head; x are N training inputs of task t. With equal Fishers
this is plain averaging. The floor ε keeps coordinates with zero Fisher everywhere at the
average instead of 0/0.

Checked against the paper's abstract (NeurIPS 2022): a Laplace approximation of each
model's posterior with the Fisher information as precision, so simple averaging is the
isotropic special case. As recalled from its method section (not re-read here): the
diagonal Fisher with the expectation over the model's own predictive distribution,
uniform λ_t, and the Fisher estimated from a subset of training examples; N = 256 is a
harness choice. Here y is drawn once per example from p_t(y|x) (an unbiased estimate;
``labels=empirical`` uses the true labels instead), with the run's seed. Only one
expert's Fisher is held at a time: Σ_t F_t θ_t and Σ_t F_t are running sums on the
run's device.
"""

from __future__ import annotations

import torch

from harness.merging.statistics import diagonal_fisher
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

NUM_EXAMPLES = Param(256, help="N, training examples per task for the Fisher", low=1)
FLOOR = Param(1e-6, help="ε, the smallest Fisher value used as a weight", low=0.0)
LABELS = Param(
    "sampled",
    help="y for the Fisher: sampled from the model (true Fisher) or the true labels",
    choices=("sampled", "empirical"),
)
BATCH_SIZE = Param(32, help="examples per batch while estimating the Fisher", low=1)


@register_method(
    "fisher",
    family="merging",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/2111.09832",
    params={
        "num_examples": NUM_EXAMPLES,
        "floor": FLOOR,
        "labels": LABELS,
        "batch_size": BATCH_SIZE,
    },
    smoke={"num_examples": 8},  # fewer steps/examples for the contract tests only
    description="Average the experts weighted by their diagonal Fisher information.",
)
def fisher(
    context: MethodContext, num_examples: int, floor: float, labels: str, batch_size: int
) -> Solution:
    pool = context.pool
    model = context.build_model(pool.base_state())
    weighted: dict[str, torch.Tensor] = {}
    totals: dict[str, torch.Tensor] = {}
    for task in pool.tasks:
        model.load_state_dict(pool.expert_state(task), strict=True)
        sums, count = diagonal_fisher(
            model,
            context.head(task),
            context.labeled_batches(task, "train", batch_size=batch_size, limit=num_examples),
            context.device,
            labels=labels,
            generator=context.generator(f"fisher:{task}"),
        )
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                weight = (sums[name] / max(count, 1)).clamp(min=floor) / len(pool.tasks)
                if name in weighted:
                    weighted[name] += weight * parameter
                    totals[name] += weight
                else:
                    weighted[name] = weight * parameter
                    totals[name] = weight.clone()
        del sums
    merged = {name: (weighted[name] / totals[name]).cpu() for name in weighted}
    return Solution(state=pool.output_state(merged), info={"fisher_labels": labels})


def fisher_average(tensors: list[torch.Tensor], fishers: list[torch.Tensor]) -> torch.Tensor:
    """θ* = Σ_t F_t θ_t / Σ_t F_t for one parameter (the merge rule, for tests and reuse)."""
    numerator = sum(f * t for f, t in zip(fishers, tensors))
    return numerator / sum(fishers)
