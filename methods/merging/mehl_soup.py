"""MEHL-Soup (Li et al., ECCV 2024, "Learning scalable model soup on a single GPU: an
efficient subspace training strategy"), https://arxiv.org/abs/2407.03641

A learned soup whose mixing coefficients live on the affine hyperplane Σ_t α_t = 1
(signs free, unlike the simplex of the learned soup), learned by block coordinate
descent so that only a few experts are in memory at a time:

    α ← 1/T,  θ ← Σ_t α_t θ_t                                   (the uniform soup)
    repeat for R rounds:
        S ← m experts drawn at random (run seed)
        learn δ ∈ R^S with Σ_{t∈S} δ_t = 0 (δ = d − mean(d)) by Adam on
            mean_t CE(head_t(f(x; θ + Σ_{t∈S} δ_t (θ_t − θ))), y)   (validation data)
        α_S ← α_S + δ;  θ ← θ + Σ_{t∈S} δ_t (θ_t − θ)

Σ_t δ_t = 0 keeps Σ_t α_t = 1, and θ + Σ δ_t (θ_t − θ) = Σ_t α_t θ_t exactly, so each
round moves the soup within the hyperplane while holding the soup and m experts only.
The layer-wise variant (MEHL-Soup+) learns one α per expert and parameter block.

Checked against the paper's abstract and summaries: the learned soup recast as a
hyperplane optimisation problem, block coordinate gradient descent that loads only a few
fine-tuned models per iteration and builds one combined model's graph, and the
layer-wise extension MEHL-Soup+.
Implementation choices (the paper's schedule was not confirmed): m = 2 experts per
round, 20 rounds of 10 Adam steps with learning rate 0.05, 16 validation examples per
task per step.
"""

from __future__ import annotations

import torch

from harness.merging.coefficients import TaskVectorMixer, labelled_streams, learn_on_labels
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

GRANULARITY = Param(
    "task",
    help="task: one α per expert; layer: one α per expert and layer",
    choices=("task", "layer"),
)
EXPERTS_PER_ROUND = Param(2, help="m, experts loaded and updated per round", low=1)
ROUNDS = Param(20, help="R, block coordinate descent rounds", low=0)
STEPS = Param(10, help="Adam steps per round", low=0)
LR = Param(0.05, help="Adam learning rate", low=0.0)
BATCH_SIZE = Param(16, help="validation examples per task per step", low=1)


def on_hyperplane(raw: torch.Tensor) -> torch.Tensor:
    """δ = d − mean(d) over experts (the last dimension): Σ_t δ_t = 0."""
    return raw - raw.mean(dim=-1, keepdim=True)


@register_method(
    "mehl_soup",
    family="merging",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/2407.03641",
    params={
        "granularity": GRANULARITY,
        "experts_per_round": EXPERTS_PER_ROUND,
        "rounds": ROUNDS,
        "steps": STEPS,
        "lr": LR,
        "batch_size": BATCH_SIZE,
    },
    smoke={"rounds": 2, "steps": 2},  # fewer steps/examples for the contract tests only
    description="Hyperplane soup learned by block coordinate descent, a few experts at a time.",
)
def mehl_soup(
    context: MethodContext,
    granularity: str,
    experts_per_round: int,
    rounds: int,
    steps: int,
    lr: float,
    batch_size: int,
) -> Solution:
    pool = context.pool
    tasks = pool.tasks
    m = min(experts_per_round, len(tasks))
    with torch.no_grad():
        soup = {
            name: torch.stack([pool.expert_tensor(t, name) for t in tasks])
            .mean(0)
            .to(context.device)
            for name in pool.mergeable_names()
        }
    model = context.build_model(pool.output_state(soup))
    blocks = len(soup)
    alpha = torch.full(
        (len(tasks),) if granularity == "task" else (blocks, len(tasks)), 1 / len(tasks)
    )
    streams = labelled_streams(context, list(context.tasks), "validation", batch_size)
    generator = context.generator("mehl_soup")
    history = []
    for _ in range(rounds):
        chosen = sorted(torch.randperm(len(tasks), generator=generator)[:m].tolist())
        mixer = TaskVectorMixer(context, [tasks[i] for i in chosen], anchor=soup, model=model)
        raw = mixer.initial(granularity, 0.0).requires_grad_(True)
        losses = learn_on_labels(
            context,
            mixer,
            raw,
            on_hyperplane,
            split="validation",
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            desc="MEHL-Soup",
            streams=streams,
        )
        delta = on_hyperplane(raw.detach())
        soup = {name: value.detach() for name, value in mixer.merged(delta).items()}
        alpha[..., chosen] += delta.cpu()
        history.append(
            {"experts": [tasks[i] for i in chosen], "loss": losses[-1] if losses else None}
        )
        del mixer
    return Solution(
        state=pool.output_state({name: value.cpu() for name, value in soup.items()}),
        info={"granularity": granularity, "alpha": alpha.tolist(), "rounds": history},
    )
