"""Learned soup (Wortsman et al., ICML 2022, "Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time"),
https://arxiv.org/abs/2203.05482 (the "learned soup" of the appendix).

The soup's mixing coefficients are learned by gradient descent on held-out labelled data:

    α = softmax(w)                     (task-wise: one α_t per expert;
                                        layer-wise: a softmax per parameter block)
    θ(α) = Σ_t α_t θ_t = θ_0 + Σ_t α_t τ_t          (since Σ_t α_t = 1)
    min_w  mean_t CE(head_t(f(x; θ(α))), y),   (x, y) from task t's validation split

Checked against the paper: learned soups optimise the ingredients' mixing coefficients
on the held-out validation set by minibatch gradient descent, with a per-layer variant.
Implementation choices (the appendix's exact schedule was not confirmed): w starts at 0
(the uniform soup), Adam with learning rate 0.05, 200 steps, 16 examples per task per
step. Test labels are never read.
"""

from __future__ import annotations

import torch

from harness.merging.coefficients import TaskVectorMixer, learn_on_labels
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

GRANULARITY = Param(
    "task",
    help="task: one α per expert; layer: one α per expert and layer",
    choices=("task", "layer"),
)
STEPS = Param(200, help="optimisation steps", low=0)
LR = Param(0.05, help="Adam learning rate on the softmax logits", low=0.0)
BATCH_SIZE = Param(16, help="validation examples per task per step", low=1)


def soup_weights(logits: torch.Tensor) -> torch.Tensor:
    """α = softmax over experts (the last dimension): a point of the probability simplex."""
    return torch.softmax(logits, dim=-1)


@register_method(
    "learned_soup",
    family="merging",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/2203.05482",
    params={"granularity": GRANULARITY, "steps": STEPS, "lr": LR, "batch_size": BATCH_SIZE},
    smoke={"steps": 4},  # fewer steps/examples for the contract tests only
    description="Soup weights on the simplex, learned on labelled validation data.",
)
def learned_soup(
    context: MethodContext, granularity: str, steps: int, lr: float, batch_size: int
) -> Solution:
    mixer = TaskVectorMixer(context)
    logits = mixer.initial(granularity, 0.0).requires_grad_(True)
    losses = learn_on_labels(
        context,
        mixer,
        logits,
        soup_weights,
        split="validation",
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        desc="learned soup",
    )
    weights = soup_weights(logits.detach())
    return Solution(
        state=mixer.state(weights),
        info={
            "granularity": granularity,
            "weights": weights.cpu().tolist(),
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
        },
    )
