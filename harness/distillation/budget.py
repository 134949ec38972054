"""The distillation budget and the seeded order in which train batches are visited.

A budget is three hyperparameters recorded like any other: optimisation ``steps``,
``batch_size`` train inputs per task per step, and ``examples``, the train examples per
task the student may learn from (0: the whole train split). Each step draws one batch
of every task; batches keep the suite's grouping (text suites bucket by length), so a
batch is the unit that teacher outputs are cached by. Epochs visit a task's batches in
a fresh seeded permutation, so the same seed visits the same batches in the same order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from harness.errors import HarnessError
from harness.method import MethodContext


@dataclass(frozen=True)
class Budget:
    """How much training a student gets (all three are method hyperparameters)."""

    steps: int
    batch_size: int
    examples: int = 0  # train examples per task; 0 = the whole train split

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class TaskData:
    """One task's train batches (inputs, labels) as the suite groups them, and the order
    in which the steps visit them (indices into ``batches``)."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    order: list[int]

    @property
    def used(self) -> list[int]:
        """The distinct batches the plan visits, in first-visit order."""
        return list(dict.fromkeys(self.order))


def epoch_order(count: int, steps: int, generator: torch.Generator) -> list[int]:
    """``steps`` batch indices: seeded permutations of ``range(count)``, one per epoch."""
    order: list[int] = []
    while len(order) < steps:
        order += torch.randperm(count, generator=generator).tolist()
    return order[:steps]


def plan(context: MethodContext, budget: Budget) -> dict[str, TaskData]:
    """Per task, its train batches (at most ``budget.examples`` examples) and their order."""
    limit = budget.examples or None
    result = {}
    for task in context.tasks:
        batches = list(
            context.labeled_batches(task, "train", batch_size=budget.batch_size, limit=limit)
        )
        if not batches:
            raise HarnessError(
                f"task {task!r} has no train examples to distil on; check the suite's train split"
            )
        generator = context.generator(f"distillation-order:{task}")
        result[task] = TaskData(batches, epoch_order(len(batches), budget.steps, generator))
    return result
