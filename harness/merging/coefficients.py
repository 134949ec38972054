"""Learned merging coefficients: θ(λ) = θ_0 + Σ_t λ_{b,t} τ_{b,t}, optimised through the model.

AdaMerging, aTLAS, learned soups and MEHL-Soup all learn a few numbers per task (one per
task, or one per task and parameter block) by gradient descent through the backbone. The
mechanics are shared here: the base and the stacked task vectors live on the run's
device once; a model is built once; ``torch.func.functional_call`` runs it with merged
parameters that are differentiable functions of the coefficients.

A *block* is one parameter tensor of the pool (a weight matrix, a bias, a LayerNorm
scale): "layer-wise" coefficients in AdaMerging's sense are per block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from harness.errors import HyperparameterError
from harness.method import MethodContext
from harness.progress import progress_bar

GRANULARITIES = ("task", "layer")


class TaskVectorMixer:
    """The base and the task vectors of some experts, ready to mix with coefficients.

    ``coefficients`` has shape [T] (task-wise: one λ per task) or [B, T] (layer-wise: one
    λ per block and task), B = ``len(self.names)``, T = ``len(self.tasks)``.
    """

    def __init__(
        self,
        context: MethodContext,
        tasks: Sequence[str] | None = None,
        *,
        anchor: dict[str, torch.Tensor] | None = None,
        model: nn.Module | None = None,
    ) -> None:
        """``anchor`` replaces θ_0 (vectors become θ_t − anchor); ``model`` reuses a built
        backbone (its parameters are never modified)."""
        pool = context.pool
        # The backbone first: it fails fast (e.g. without a suite) before T models load.
        self.model = model if model is not None else context.build_model(pool.base_state())
        self.context = context
        self.device = context.device
        self.tasks = list(tasks) if tasks is not None else list(pool.tasks)
        self.names = pool.mergeable_names()
        self.base: dict[str, torch.Tensor] = {}
        self.vectors: dict[str, torch.Tensor] = {}  # name → [T, *shape]
        with torch.no_grad():
            for name in self.names:
                base = pool.base_tensor(name) if anchor is None else anchor[name]
                base = base.to(self.device)
                self.base[name] = base
                self.vectors[name] = torch.stack(
                    [pool.expert_tensor(task, name).to(self.device) - base for task in self.tasks]
                )
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.buffers = {name: b for name, b in self.model.named_buffers()}

    @property
    def num_blocks(self) -> int:
        return len(self.names)

    def initial(self, granularity: str, value: float) -> torch.Tensor:
        """Coefficients filled with ``value``, shaped for ``granularity``."""
        if granularity not in GRANULARITIES:
            raise HyperparameterError(
                f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}"
            )
        shape = (len(self.tasks),) if granularity == "task" else (self.num_blocks, len(self.tasks))
        return torch.full(shape, float(value), device=self.device)

    def merged(self, coefficients: torch.Tensor) -> dict[str, torch.Tensor]:
        """θ(λ) for every mergeable tensor; differentiable in ``coefficients``."""
        result = {}
        for index, name in enumerate(self.names):
            weights = coefficients if coefficients.dim() == 1 else coefficients[index]
            vectors = self.vectors[name]
            result[name] = self.base[name] + torch.tensordot(weights, vectors, dims=1)
        return result

    def forward(self, coefficients: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Backbone features of ``inputs`` under the merged parameters θ(λ)."""
        params = self.merged(coefficients)
        return functional_call(self.model, (params, self.buffers), (inputs.to(self.device),))

    def state(self, coefficients: torch.Tensor) -> dict[str, torch.Tensor]:
        """The merged state (pool names, stored dtypes) for final evaluation."""
        with torch.no_grad():
            merged = {name: t.detach().cpu() for name, t in self.merged(coefficients).items()}
        return self.context.pool.output_state(merged)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy H(p) = −Σ_c p_c log p_c of softmax(logits) over the batch."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1).mean()


def cycle(make: Callable[[], Iterable[torch.Tensor]]) -> Iterator:
    """Repeat a finite, fixed-order iterable forever (a fresh pass each time)."""
    while True:
        empty = True
        for item in make():
            empty = False
            yield item
        if empty:
            raise RuntimeError("a data split used for learning coefficients is empty")


def optimise(
    parameters: list[torch.Tensor],
    loss_fn: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    progress: bool = False,
    desc: str = "coefficients",
    betas: tuple[float, float] = (0.9, 0.999),
    project: Callable[[], None] | None = None,
) -> list[float]:
    """Adam on ``parameters`` for ``steps`` steps of ``loss_fn(step)``; returns the losses.

    ``project`` runs after each step (e.g. clipping coefficients to a range).
    """
    optimizer = torch.optim.Adam(parameters, lr=lr, betas=betas)
    losses = []
    for step in progress_bar(range(steps), total=steps, desc=desc, enabled=progress):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step)
        loss.backward()
        optimizer.step()
        if project is not None:
            with torch.no_grad():
                project()
        losses.append(float(loss.detach()))
    return losses


def heads(context: MethodContext, tasks: Sequence[str]) -> dict[str, nn.Module]:
    """The frozen heads, on the run's device, with gradients off."""
    result = {}
    for task in tasks:
        head = context.head(task)
        for parameter in head.parameters():
            parameter.requires_grad_(False)
        result[task] = head
    return result


def learn_on_labels(
    context: MethodContext,
    mixer: TaskVectorMixer,
    raw: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    split: str,
    steps: int,
    lr: float,
    batch_size: int,
    desc: str,
    streams: dict[str, Iterator] | None = None,
) -> list[float]:
    """Minimise the mean over tasks of the cross-entropy of head_t(f(x; θ(transform(raw))))
    on labelled ``split`` batches (train or validation), by Adam on ``raw``."""
    tasks = list(context.tasks)
    task_heads = heads(context, tasks)
    if streams is None:
        streams = labelled_streams(context, tasks, split, batch_size)

    def loss(step: int) -> torch.Tensor:
        total = torch.zeros((), device=context.device)
        coefficients = transform(raw)
        for task in tasks:
            inputs, labels = next(streams[task])
            logits = task_heads[task](mixer.forward(coefficients, inputs))
            total = total + nn.functional.cross_entropy(logits, labels.to(context.device))
        return total / len(tasks)

    return optimise([raw], loss, steps=steps, lr=lr, progress=context.progress, desc=desc)


def labelled_streams(
    context: MethodContext, tasks: Sequence[str], split: str, batch_size: int
) -> dict[str, Iterator]:
    """Per task, (inputs, labels) batches of ``split`` forever, in the suite's order."""
    return {
        task: cycle(lambda task=task: context.labeled_batches(task, split, batch_size=batch_size))
        for task in tasks
    }
