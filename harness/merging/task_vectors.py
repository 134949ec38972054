"""Task-vector statistics over a whole model, computed while streaming the pool.

Several methods need a quantity of each *whole* task vector τ_t = θ_t − θ_0 before they
can merge any single tensor: TIES keeps each task vector's top-k% entries by magnitude
over all parameters, not per tensor. Holding N flattened task vectors would defeat the
streaming pool, so the exact k-th largest magnitude is found in two streaming passes:
a histogram of log-magnitudes locates the bin holding the k-th value, and the second
pass gathers only that bin's values to pick it exactly. The bins are the top bits of
float32 magnitudes (exponent and 7 mantissa bits, 1/128 of an octave each), which grow
with the value: one shift per entry, no logarithms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from harness.weights.pool import ExpertPool, TensorGroup

Vectors = Callable[[TensorGroup], list[torch.Tensor]]

_SHIFT, _BINS = 16, 1 << 15  # a non-negative float32's top 15 bits; bin 0 holds zeros


def _binned_magnitudes(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 magnitudes (flattened) and their log-scale bins (one rule for both passes)."""
    magnitudes = values.detach().flatten().float().abs()
    return magnitudes, magnitudes.view(torch.int32) >> _SHIFT


def magnitude_thresholds(
    pool: ExpertPool,
    density: float,
    *,
    progress: bool = True,
    vectors: Vectors | None = None,
    seed: int = 0,
    rowwise: bool | None = None,
) -> dict[str, float]:
    """Per task, the smallest |τ_t| kept when keeping the top ``density`` fraction.

    ``density`` is the kept fraction of each task vector's entries over every mergeable
    tensor; keeping ``|τ| >= threshold`` keeps that fraction (ties may add a few more).
    ``vectors(group)`` gives, per task, another per-tensor quantity to threshold instead
    of the task vectors (PERU prunes θ_t − θ_merged); it must be deterministic. The
    histograms add up over row slices, so large matrices are streamed in slices: always
    for the task vectors, for another ``vectors`` only when it says ``rowwise=True``. A
    random ``vectors`` (DARE's drops) must be streamed in the same pieces as the merge
    that uses the thresholds.
    """
    if rowwise is None:
        rowwise = vectors is None
    vectors = vectors or (lambda group: group.task_vectors)
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    tasks = pool.tasks
    if density == 1.0:
        return {task: 0.0 for task in tasks}
    total = pool.num_parameters()
    keep = max(1, math.ceil(density * total))

    histograms = {task: torch.zeros(_BINS, dtype=torch.float64) for task in tasks}
    for group in pool.stream(seed=seed, rowwise=rowwise, desc="τ stats", progress=progress):
        for task, vector in zip(tasks, vectors(group)):
            magnitudes, indices = _binned_magnitudes(vector)
            counts = torch.bincount(indices, minlength=_BINS).double()
            # zeros are never gathered: after DARE most entries are 0, and the k-th
            # value falling among them means "keep every non-zero entry"
            counts[0] -= (magnitudes == 0).sum()
            histograms[task] += counts.cpu()

    bins: dict[str, tuple[int, float]] = {}
    thresholds: dict[str, float] = {}
    for task in tasks:
        from_top = torch.flip(histograms[task], [0]).cumsum(0)
        if from_top[-1] < keep:  # fewer non-zero entries than asked: zeros are kept too
            thresholds[task] = 0.0
            continue
        index_from_top = int(torch.searchsorted(from_top, torch.tensor(float(keep))))
        index = _BINS - 1 - index_from_top
        above = float(from_top[index_from_top - 1]) if index_from_top > 0 else 0.0
        bins[task] = (index, above)
    if not bins:
        return thresholds

    inside: dict[str, list[torch.Tensor]] = {task: [] for task in bins}
    for group in pool.stream(seed=seed, rowwise=rowwise, desc="τ top-k", progress=progress):
        for task, vector in zip(tasks, vectors(group)):
            if task not in bins:
                continue
            magnitudes, indices = _binned_magnitudes(vector)
            selected = magnitudes[indices == bins[task][0]]
            inside[task].append(selected[selected > 0].cpu())
    for task, (_, above) in bins.items():
        values = torch.cat(inside[task]) if inside[task] else torch.zeros(0)
        rank = keep - int(above)  # the k-th value is the rank-th largest inside the bin
        if values.numel() == 0 or rank <= 0:
            thresholds[task] = 0.0
            continue
        rank = min(rank, values.numel())
        thresholds[task] = float(torch.topk(values, rank).values[-1])
    return thresholds


def keep_top_magnitudes(vector: torch.Tensor, threshold: float) -> torch.Tensor:
    """``vector`` with entries below ``threshold`` in magnitude set to zero."""
    return torch.where(vector.abs() >= threshold, vector, torch.zeros_like(vector))


def stream_sums(
    pool: ExpertPool,
    statistic: Callable[[TensorGroup], torch.Tensor],
    *,
    seed: int = 0,
    progress: bool = True,
    desc: str = "τ sums",
    rowwise: bool = False,
) -> torch.Tensor:
    """Σ over every mergeable tensor of ``statistic(group)`` (a small float64 vector, e.g.
    one value per task), in one streaming pass: whole-model sums such as Σ|τ_t| that
    EMR-Merging's rescalers need, without holding any whole task vector. A ``rowwise``
    statistic (a sum over entries) is fed large matrices in row slices."""
    total: torch.Tensor | None = None
    for group in pool.stream(seed=seed, rowwise=rowwise, desc=desc, progress=progress):
        value = statistic(group).detach().double().cpu()
        total = value if total is None else total + value
    if total is None:
        raise ValueError("the pool has no mergeable tensors")
    return total
