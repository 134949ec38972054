"""Shared mechanics for merging methods: stream the pool, merge tensor by tensor.

A data-free merge is a function of one parameter across the experts. ``@tensorwise``
turns ``fn(group, **hyperparameters) -> merged tensor`` into a method, as mergekit's
small decorator does: the pool is streamed, only floating-point tensors are merged,
computation runs in float32 on the run's device, and the result is cast back. A merge
declared ``rowwise`` is fed large matrices in row slices, so memory stays bounded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from harness.merging import kernels
from harness.merging.timing import timed
from harness.method import MethodContext, Solution
from harness.progress import progress_bar
from harness.weights.pool import ExpertPool, TensorGroup

TensorMerge = Callable[..., torch.Tensor]
Statistic = Callable[[TensorGroup], torch.Tensor]


def tensorwise(
    fn: TensorMerge | None = None,
    *,
    rowwise: bool = False,
    statistic: Statistic | None = None,
) -> Callable[..., Any]:
    """Make a per-tensor merge (``fn(group, **hp) -> Tensor``) into a streaming method.

    ``@tensorwise(rowwise=True)`` declares that each row of the result depends only on
    the same row of the inputs (true of element-wise merges), so large matrices may be
    streamed in row slices (``ExpertPool.pieces``); the contract tests check the claim.
    ``@tensorwise(statistic=s)`` declares a merge that is row-wise once it knows a
    whole-tensor statistic that adds up over row slices (norms, inner products): for a
    matrix too large to hold whole (``ExpertPool.is_huge``) it is called as
    ``fn(slice, statistic=Σ s(slice), **hp)`` on each row slice; on every other tensor
    as ``fn(group, statistic=None, **hp)``, computing the statistic itself.
    """

    def decorate(fn: TensorMerge) -> Callable[..., Solution]:
        @functools.wraps(fn)
        def method(context: MethodContext, **hyperparameters: Any) -> Solution:
            merge_one = functools.partial(fn, **hyperparameters)
            state = merge_stream(context, merge_one, rowwise=rowwise, statistic=statistic)
            return Solution(state=state)

        method.tensor_merge = fn  # type: ignore[attr-defined]
        return method

    return decorate(fn) if fn is not None else decorate


def merge_stream(
    context: MethodContext,
    merge_one: Callable[..., torch.Tensor],
    *,
    rowwise: bool = False,
    statistic: Statistic | None = None,
) -> dict[str, torch.Tensor]:
    """Apply ``merge_one`` to every mergeable tensor of the pool, one at a time (in row
    slices of large matrices when ``rowwise``). With a ``statistic`` (see ``tensorwise``)
    huge matrices take two passes over their row slices: the statistic, then the merge."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}
    if statistic is None:
        with torch.no_grad():
            for group in pool.stream(
                seed=context.seed, rowwise=rowwise, desc="merge", progress=context.progress
            ):
                with timed("merge"):
                    result = merge_one(group)
                pool.place(merged, group, result)
        return pool.output_state(merged)
    names = pool.mergeable_names()
    with torch.no_grad():
        for name in progress_bar(names, desc="merge", enabled=context.progress):
            if not pool.is_huge(name):
                for group in pool.groups([name], context.seed, rowwise=rowwise):
                    with timed("merge"):
                        result = merge_one(group, statistic=None)
                    pool.place(merged, group, result)
                continue
            total = sliced_sum(pool, name, statistic, context.seed)
            for group in pool.groups([name], context.seed, rowwise=True):
                with timed("merge"):
                    result = merge_one(group, statistic=total)
                pool.place(merged, group, result)
    return pool.output_state(merged)


def sliced_sum(pool: ExpertPool, name: str, statistic: Statistic, seed: int = 0) -> torch.Tensor:
    """Σ ``statistic(slice)`` over the row slices of one tensor, in float64."""
    total: torch.Tensor | None = None
    for group in pool.groups([name], seed, rowwise=True):
        with timed("statistics"):
            value = statistic(group).detach().double().cpu()
            total = value if total is None else total + value
    assert total is not None
    return total


def summed_task_vectors(group: TensorGroup) -> torch.Tensor:
    """Σ_t τ_t, the same float32 numbers as ``stack(group.task_vectors).sum(dim=0)``; on a
    CPU one fused sweep (``harness.merging.kernels``) instead of T + 1 temporaries."""
    if not kernels.use_kernels(group.base):
        return stack(group.task_vectors).sum(dim=0)
    out = kernels.fused(kernels.task_vector_sum, group.base, group.experts)
    return out.to(group.base.dtype)


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Experts along a new leading dimension (tasks first)."""
    return torch.stack(tensors, dim=0)
