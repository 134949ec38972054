"""Per-task models built lazily, one tensor at a time.

Methods that keep something per task (TALL masks, EMR masks and rescalers, PERU sparse
or low-rank task vectors) return ``Solution(task_states=...)``. ``streamed_task_states``
builds the state of one task only when the suite asks for it, streaming the pool tensor
by tensor as merging does, so the per-task extras are never all held in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.merging.timing import timed
from harness.method import MethodContext, StateDict
from harness.weights.pool import TensorGroup

TaskTensor = Callable[[TensorGroup, int], torch.Tensor]


def streamed_task_states(
    context: MethodContext,
    build: TaskTensor,
    *,
    rowwise: bool = False,
    statistic: Callable[[TensorGroup, int], torch.Tensor] | None = None,
) -> Callable[[str], StateDict]:
    """``task → state`` where each tensor is ``build(group, index of the task)``; a
    ``rowwise`` build gets large matrices in row slices (as ``merge_stream``). With a
    ``statistic`` (adding up over row slices, as for ``tensorwise``), a matrix too large
    to hold whole is built slice by slice as ``build(slice, index, statistic=Σ)``."""
    pool = context.pool

    def task_state(task: str) -> StateDict:
        if task not in pool.tasks:
            raise KeyError(f"no expert for task {task!r} in the pool ({', '.join(pool.tasks)})")
        index = pool.tasks.index(task)
        merged: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name in pool.mergeable_names():
                huge = statistic is not None and pool.is_huge(name)
                total = None
                if huge:
                    for group in pool.groups([name], context.seed, rowwise=True):
                        with timed("statistics"):
                            part = statistic(group, index).double()
                            total = part if total is None else total + part
                for group in pool.groups([name], context.seed, rowwise=rowwise or huge):
                    with timed("merge"):
                        if huge:
                            result = build(group, index, statistic=total)  # type: ignore[call-arg]
                        else:
                            result = build(group, index)
                    pool.place(merged, group, result)
        return pool.output_state(merged)

    return task_state
