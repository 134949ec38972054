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

from harness.merging.timing import timed
from harness.method import MethodContext, Solution
from harness.weights.pool import TensorGroup

TensorMerge = Callable[..., torch.Tensor]


def tensorwise(fn: TensorMerge | None = None, *, rowwise: bool = False) -> Callable[..., Any]:
    """Make a per-tensor merge (``fn(group, **hp) -> Tensor``) into a streaming method.

    ``@tensorwise(rowwise=True)`` declares that each row of the result depends only on
    the same row of the inputs (true of element-wise merges), so large matrices may be
    streamed in row slices (``ExpertPool.pieces``); the contract tests check the claim.
    """

    def decorate(fn: TensorMerge) -> Callable[..., Solution]:
        @functools.wraps(fn)
        def method(context: MethodContext, **hyperparameters: Any) -> Solution:
            merge_one = functools.partial(fn, **hyperparameters)
            return Solution(state=merge_stream(context, merge_one, rowwise=rowwise))

        method.tensor_merge = fn  # type: ignore[attr-defined]
        return method

    return decorate(fn) if fn is not None else decorate


def merge_stream(
    context: MethodContext,
    merge_one: Callable[[TensorGroup], torch.Tensor],
    *,
    rowwise: bool = False,
) -> dict[str, torch.Tensor]:
    """Apply ``merge_one`` to every mergeable tensor of the pool, one at a time (in row
    slices of large matrices when ``rowwise``)."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for group in pool.stream(
            seed=context.seed, rowwise=rowwise, desc="merge", progress=context.progress
        ):
            with timed("merge"):
                result = merge_one(group)
            pool.place(merged, group, result)
    return pool.output_state(merged)


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Experts along a new leading dimension (tasks first)."""
    return torch.stack(tensors, dim=0)
