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
harness choice (also FusionBench's CLIP value). Here y is drawn once per example from
p_t(y|x) (an unbiased estimate; ``labels=empirical`` uses the true labels instead), with
the run's seed. Only one expert's Fisher is held at a time: Σ_t F_t θ_t and Σ_t F_t are
running sums on the run's device.

``variant=fusionbench`` reproduces FusionBench's Fisher merging
(``method/fisher_merging/fisher_merging.py``, ``clip_fisher_merging.py``,
``config/method/fisher_merging/clip_fisher_merging.yaml``), which differs from the
paper's (the default, ``variant=paper``) in three ways:

1. Estimator: per batch B of ``batch_size`` examples it squares one gradient,
   F_t = (1/N) Σ_B (∇_θ Σ_{x∈B} Σ_y √p(y|x) log p(y|x))² (√p held constant): the square
   of a sum over examples and classes, biased by the cross terms and dependent on the
   batch size (FusionBench's CLIP batch size is 32, the default here), against the
   paper's per-example squared gradients.
2. Floor: F_t + ε (``minimal_fisher_weight``, 1e-6) instead of max(F_t, ε); it shifts
   every coordinate, not only the small ones.
3. Normalisation (``normalize_fisher_weight: true``, its default): each model's weight
   is further scaled by 1/(‖F_t‖₂ + ε) with ‖F_t‖₂ the L2 norm of its Fisher over all
   merged parameters, renormalised to sum to one over models (that common factor
   cancels in the ratio, so only 1/(‖F_t‖₂ + ε) is applied here), so an expert with a
   large Fisher does not dominate every coordinate. The paper has no such step.

    θ* = Σ_t c_t (F_t + ε) θ_t / Σ_t c_t (F_t + ε),   c_t = 1/(‖F_t‖₂ + ε)

``labels`` applies to the paper variant only (FusionBench takes the expectation over
all classes inside its batch gradient).

Causal LMs (suites that provide "lm", e.g. minimath): p_t(y|x) is the expert's
probability of an answer given its prompt, Σ_j log p_t(y_j | x, y_<j) over the answer
tokens of task t's fine-tuning sequences; y is drawn token by token from the expert given
the gold prefix (``labels=sampled``) or is the gold answer (``empirical``); see
``harness.merging.statistics.causal_lm_fisher``. FusionBench's variant is defined for
classification heads only and is refused there.
"""

from __future__ import annotations

import math

import torch

from harness.errors import HarnessError, HyperparameterError
from harness.merging.statistics import causal_lm_fisher, diagonal_fisher
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

NUM_EXAMPLES = Param(256, help="N, training examples per task for the Fisher", low=1)
FLOOR = Param(1e-6, help="ε, the Fisher floor: max(F, ε) (paper) or F + ε (fusionbench)", low=0.0)
LABELS = Param(
    "sampled",
    help="y for the Fisher: sampled from the model (true Fisher) or the true labels",
    choices=("sampled", "empirical"),
)
BATCH_SIZE = Param(32, help="examples per batch while estimating the Fisher", low=1)
VARIANT = Param(
    "paper",
    help="paper: per-example Fisher, max(F, ε); fusionbench: its batch estimator, F + ε, "
    "each Fisher divided by its L2 norm",
    choices=("paper", "fusionbench"),
)


@register_method(
    "fisher",
    family="merging",
    needs=("batches", "heads|lm"),
    reference="https://arxiv.org/abs/2111.09832",
    params={
        "num_examples": NUM_EXAMPLES,
        "floor": FLOOR,
        "labels": LABELS,
        "batch_size": BATCH_SIZE,
        "variant": VARIANT,
    },
    smoke={"num_examples": 8},  # fewer steps/examples for the contract tests only
    description="Average the experts weighted by their diagonal Fisher information.",
)
def fisher(
    context: MethodContext,
    num_examples: int,
    floor: float,
    labels: str,
    batch_size: int,
    variant: str,
) -> Solution:
    pool = context.pool
    language_model = "heads" not in context.suite.provides
    if language_model and variant != "paper":
        raise HarnessError(
            "fisher variant=fusionbench is defined for classification heads; "
            "use variant=paper on a causal-LM suite"
        )
    model = context.build_model(pool.base_state())
    weighted: dict[str, torch.Tensor] = {}
    totals: dict[str, torch.Tensor] = {}
    for task in pool.tasks:
        model.load_state_dict(pool.expert_state(task), strict=True)
        batches = context.labeled_batches(task, "train", batch_size=batch_size, limit=num_examples)
        generator = context.generator(f"fisher:{task}")
        if language_model:
            sums, count = causal_lm_fisher(
                model, batches, context.device, context.token_mask, labels=labels,
                generator=generator,
            )  # fmt: skip
        else:
            sums, count = diagonal_fisher(
                model,
                context.head(task),
                batches,
                context.device,
                labels=labels,
                generator=generator,
                estimator="per_example" if variant == "paper" else "batch_expected",
            )
        fishers = {name: value.div_(max(count, 1)) for name, value in sums.items()}
        weights = fisher_weights_(fishers, floor, variant)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                weight = weights[name] / len(pool.tasks)
                if name in weighted:
                    weighted[name] += weight * parameter
                    totals[name] += weight
                else:
                    weighted[name] = weight * parameter
                    totals[name] = weight.clone()
        del sums, fishers, weights
    merged = {name: (weighted[name] / totals[name]).cpu() for name in weighted}
    info = {
        "fisher_variant": variant,
        "fisher_labels": labels if variant == "paper" else "expected",
    }
    return Solution(state=pool.output_state(merged), info=info)


def fisher_weights_(
    fishers: dict[str, torch.Tensor], floor: float, variant: str
) -> dict[str, torch.Tensor]:
    """One model's merge weights from its (mean) diagonal Fisher, computed in place (one
    model-sized copy, not two): max(F, ε) for the paper; (F + ε)/(‖F‖₂ + ε) for
    FusionBench, with ‖F‖₂ the L2 norm of F over all of this model's parameters."""
    if variant == "paper":
        return {name: value.clamp_(min=floor) for name, value in fishers.items()}
    if variant != "fusionbench":
        raise HyperparameterError(f"fisher variant must be paper or fusionbench, got {variant!r}")
    squares = sum(float(value.double().pow(2).sum()) for value in fishers.values())
    scale = 1.0 / (math.sqrt(squares) + floor)
    return {name: value.add_(floor).mul_(scale) for name, value in fishers.items()}


def fisher_average(tensors: list[torch.Tensor], fishers: list[torch.Tensor]) -> torch.Tensor:
    """θ* = Σ_t F_t θ_t / Σ_t F_t for one parameter (the merge rule, for tests and reuse)."""
    numerator = sum(f * t for f, t in zip(fishers, tensors))
    return numerator / sum(fishers)
