"""The method contract: ``fn(context, **hyperparameters) -> Solution``.

Every family (baseline, merging, routing, distillation, transferability) plugs into the
same runner through these two types: the context gives a method what it may use (the
expert pool, the suite's data and heads, the device, the seed); the solution says, per
task, which model the suite should score and how many extra parameters it stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from harness.suite import Suite
    from harness.weights.pool import ExpertPool

StateDict = Mapping[str, torch.Tensor]


@dataclass
class MethodContext:
    """What a method may use. Test labels are never reachable from here: data-based
    methods read ``train``/``validation`` batches, or unlabeled ``test`` inputs."""

    suite: Suite
    pool: ExpertPool
    device: torch.device
    seed: int = 0
    progress: bool = True

    @property
    def tasks(self) -> list[str]:
        return self.pool.tasks

    def expert_task(self, task: str) -> str:
        """The pool task whose expert stands for ``task`` in a per-task model: ``task``
        itself, or, for a task no expert was trained on (a suite's ``reference_experts``:
        math in a second language), the first expert it is composed from, the task-skill
        expert."""
        if task in self.pool.tasks:
            return task
        composed = getattr(self.suite, "reference_experts", {}).get(task)
        return composed[0] if composed else task

    def labeled_batches(
        self, task: str, split: str = "train", *, batch_size: int = 64, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches of a train or validation split."""
        if split == "test":
            raise ValueError("methods may not read test labels; use unlabeled_batches")
        return self.suite.batches(task, split, batch_size=batch_size, limit=limit)

    def unlabeled_batches(
        self, task: str, split: str = "test", *, batch_size: int = 64, limit: int | None = None
    ) -> Iterable[torch.Tensor]:
        """Inputs only, as test-time adaptation methods (AdaMerging) use them."""
        for inputs, _ in self.suite.batches(task, split, batch_size=batch_size, limit=limit):
            yield inputs

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The real (non-padding) token positions of an input batch, or None (see
        ``Suite.token_mask``)."""
        return self.suite.token_mask(inputs)

    def head(self, task: str) -> torch.nn.Module:
        """The suite's frozen classifier for ``task`` (features → logits)."""
        return self.suite.head(task).to(self.device)

    def build_model(self, state: StateDict) -> torch.nn.Module:
        """The suite's backbone with ``state`` loaded, on the context's device."""
        return self.suite.build_model(state).to(self.device)

    def generator(self, salt: str = "") -> torch.Generator:
        generator = torch.Generator()
        generator.manual_seed(hash_seed(self.seed, salt))
        return generator


def mask_parameters(entries: int) -> int:
    """A binary mask of ``entries`` positions in 32-bit parameter equivalents (1 bit each)."""
    return -(-int(entries) // 32)


def wrong_expert_count(method: str, count: int, found: str) -> str:
    """One message for a fixed-count method given another number, before or during a run."""
    return f"{method} merges exactly {count} experts but {found}; pick {count} tasks with --only"


def cannot_apply(method: str, suite: str, missing: Sequence[str]) -> str:
    """One message for a method that needs what a suite does not provide."""
    from harness.suite import CAPABILITIES

    what = " and ".join(
        " or ".join(CAPABILITIES[alternative] for alternative in need.split("|"))
        for need in missing
    )
    return (
        f"{method} cannot run on {suite}: it needs {what}, which {suite} does not provide; "
        "pick a data-free method (harness list methods) or a suite that provides them"
    )


def require_experts(context: MethodContext, count: int, method: str) -> None:
    """Raise a one-line HarnessError unless the pool holds exactly ``count`` experts."""
    from harness.errors import HarnessError

    tasks = context.pool.tasks
    if len(tasks) != count:
        found = f"the pool has {len(tasks)} ({', '.join(tasks)})"
        raise HarnessError(wrong_expert_count(method, count, found))


def hash_seed(seed: int, salt: str) -> int:
    import hashlib

    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class Solution:
    """A method's output: one merged state for all tasks, or something per task.

    Exactly one of ``state``, ``task_states`` and ``task_modules`` is set. Per-task extras
    (masks, rescalers, low-rank factors, routers) are counted in ``extra_parameters`` so
    that storage cost is comparable across methods.

    Counting convention: ``extra_parameters`` is what a method stores beyond one model,
    in 32-bit parameter equivalents. A dense float tensor counts its entries; a scalar
    counts 1; a binary mask of P entries is P bits, so it counts ``ceil(P / 32)``
    (:func:`mask_parameters`); a sparse tensor counts its kept values plus the 1-bit mask
    of their positions; low-rank factors count the entries of their factors.
    """

    state: StateDict | None = None
    task_states: Callable[[str], StateDict] | None = None
    task_modules: Callable[[str], torch.nn.Module] | None = None
    extra_parameters: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.state, self.task_states, self.task_modules)]
        if sum(given) != 1:
            raise ValueError("a Solution needs exactly one of state, task_states, task_modules")

    def model_for(self, task: str, context: MethodContext) -> torch.nn.Module:
        """The backbone that the suite scores on ``task`` (features out, head applied later).
        A per-task solution scores a task without an expert of its own with the model of
        the expert that stands for it (``MethodContext.expert_task``)."""
        if self.task_modules is not None:
            return self.task_modules(context.expert_task(task)).to(context.device)
        if self.task_states is not None:
            return context.build_model(self.task_states(context.expert_task(task)))
        if "_shared" not in self.__dict__:
            self.__dict__["_shared"] = context.build_model(self.state)
        return self.__dict__["_shared"]
