"""Shared mechanics for merging methods: stream the pool, merge tensor by tensor.

A data-free merge is a function of one parameter across the experts. ``@tensorwise``
turns ``fn(group, **hyperparameters) -> merged tensor`` into a method, as mergekit's
small decorator does: the pool is streamed, only floating-point tensors are merged,
computation runs in float32 on the run's device, and the result is cast back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from harness.method import MethodContext, Solution
from harness.pool import TensorGroup
from harness.progress import progress_bar

TensorMerge = Callable[..., torch.Tensor]


def tensorwise(fn: TensorMerge) -> Callable[..., Solution]:
    """Make a per-tensor merge (``fn(group, **hp) -> Tensor``) into a streaming method."""

    @functools.wraps(fn)
    def method(context: MethodContext, **hyperparameters: Any) -> Solution:
        merged = merge_stream(context, lambda group: fn(group, **hyperparameters))
        return Solution(state=merged)

    method.tensor_merge = fn  # type: ignore[attr-defined]
    return method


def merge_stream(
    context: MethodContext, merge_one: Callable[[TensorGroup], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Apply ``merge_one`` to every mergeable tensor of the pool, one at a time."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}
    names = pool.mergeable_names()
    with torch.no_grad():
        groups = pool.groups(names, seed=context.seed)
        for group in progress_bar(groups, total=len(names), desc="merge", enabled=context.progress):
            result = merge_one(group)
            if result.shape != group.base.shape:
                raise RuntimeError(
                    f"merge of {group.name} returned shape {list(result.shape)}, "
                    f"expected {list(group.base.shape)}"
                )
            merged[group.name] = result.to(pool.dtype(group.name))
    return pool.output_state(merged)


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Experts along a new leading dimension (tasks first)."""
    return torch.stack(tensors, dim=0)
