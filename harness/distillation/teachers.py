"""The teachers' outputs on the planned train batches, computed once and reused.

A method says which experts teach each task (multi-teacher KD: the task's own expert;
average-logit KD: every expert) and what is matched (``"logits"``: head_t(expert(x)),
``"features"``: expert(x)). Every planned batch is run through its teachers once, expert
by expert so that only one teacher is in memory at a time, and the (averaged) outputs
are kept per (task, batch): a budget of several epochs pays for the teachers once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.distillation.batching import chunks, forward_batches
from harness.distillation.budget import TaskData
from harness.distillation.tokens import choice_shares, token_targets
from harness.errors import HarnessError
from harness.method import MethodContext
from harness.progress import progress_bar

TARGETS = ("logits", "features", "tokens")
CHUNK = 512  # inputs per teacher call: planned batches are concatenated up to this


@dataclass(frozen=True)
class Teaching:
    """What a method distils: which experts teach a task, and what of theirs is matched.

    ``teachers(task, experts)`` returns the experts (pool names) whose outputs on the
    task's inputs are averaged into the target; ``target`` is one of ``TARGETS``.
    ``"tokens"`` (causal LMs): the teachers' next-token distributions, kept top-``top_k``
    and fused by ``fusion`` (:mod:`harness.distillation.tokens`) rather than averaged.
    """

    target: str
    teachers: Callable[[str, Sequence[str]], Sequence[str]]
    top_k: int = 10
    fusion: str = "sequence"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")


def own_expert(task: str, experts: Sequence[str]) -> list[str]:
    """Each task is taught by its own expert (the task id is known during training)."""
    if task not in experts:
        raise HarnessError(
            f"task {task!r} has no expert of its own in the pool ({', '.join(experts)}); "
            "per-task distillation needs a suite whose tasks are its experts"
        )
    return [task]


def every_expert(task: str, experts: Sequence[str]) -> list[str]:
    """Every expert teaches every task (their outputs averaged)."""
    return list(experts)


@dataclass
class Targets:
    """Per (task, batch index), the teachers' averaged output, and what computing it cost."""

    outputs: dict[tuple[str, int], Any]  # a tensor; TokenTargets for "tokens"
    forward_examples: int  # inputs run through a teacher (each teacher counts once)
    teachers: dict[str, list[str]]  # task -> the experts that teach it
    choices: dict[str, dict[str, float]] | None = None  # fused targets: task -> teacher share


def teacher_targets(
    context: MethodContext, teaching: Teaching, data: dict[str, TaskData]
) -> Targets:
    """Run every planned batch through its teachers once (one expert loaded at a time)."""
    experts = list(context.pool.tasks)
    teachers = {task: list(teaching.teachers(task, experts)) for task in context.tasks}
    if teaching.target == "tokens":
        fused, forward = token_targets(context, teachers, data, teaching.top_k, teaching.fusion)
        return Targets(dict(fused), forward, teachers, choice_shares(fused, teachers))
    sums: dict[tuple[str, int], torch.Tensor] = {}
    forward = 0
    for expert in progress_bar(experts, desc="teachers", enabled=context.progress):
        taught = [task for task in context.tasks if expert in teachers[task]]
        if not taught:
            continue
        model = context.build_model(context.pool.expert_state(expert)).requires_grad_(False)
        with torch.no_grad():
            for task in taught:
                head = context.head(task) if teaching.target == "logits" else None
                used = data[task].used
                inputs = [data[task].batches[index][0] for index in used]
                for group in chunks([len(x) for x in inputs], CHUNK):
                    part = [inputs[i] for i in group]
                    outputs = forward_batches(model, part, context.device)
                    for i, output in zip(group, outputs):
                        output = (head(output) if head is not None else output).float()
                        key = (task, used[i])
                        sums[key] = sums[key] + output if key in sums else output
                    forward += sum(len(x) for x in part)
        del model
    outputs = {key: total / len(teachers[key[0]]) for key, total in sums.items()}
    return Targets(outputs, forward, teachers)
