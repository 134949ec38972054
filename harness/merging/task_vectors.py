"""Task-vector statistics over a whole model, computed while streaming the pool.

Several methods need a quantity of each *whole* task vector τ_t = θ_t − θ_0 before they
can merge any single tensor: TIES keeps each task vector's top-k% entries by magnitude
over all parameters, not per tensor. Holding N flattened task vectors would defeat the
streaming pool, so the exact k-th largest magnitude is found in two streaming passes:
a histogram of log-magnitudes locates the bin holding the k-th value, and the second
counts the low 16 bits of the entries inside that bin, which with the bin are the exact
value. The bins are the top bits of float32 magnitudes (exponent and 7 mantissa bits,
1/128 of an octave each), which grow with the value: one shift per entry, no
logarithms; memory is two histograms per task, however many entries share a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from harness.merging import kernels
from harness.merging.chunks import Scratch, spans
from harness.merging.timing import timed
from harness.weights.pool import ExpertPool, TensorGroup

Vectors = Callable[[TensorGroup], list[torch.Tensor]]

_SHIFT, _BINS = 16, kernels.BINS  # a non-negative float32's top 15 bits; bin 0 holds zeros
_LOW_BINS = kernels.LOW_BINS  # its low 16 bits: with the bin, the exact value


def magnitude_bins(values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The log-scale bin of each |value| (float32, flat) into ``out`` (int32): the top bits
    with the sign cleared, so no absolute value is taken."""
    torch.bitwise_right_shift(values.view(torch.int32), _SHIFT, out=out)
    return out.bitwise_and_(_BINS - 1)


def _flat32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(-1).float()


def _vector_chunks(
    group: TensorGroup, vectors: Vectors | None, scratch: Scratch
) -> Iterator[tuple[int, torch.Tensor]]:
    """(task index, a flat float32 chunk of its vector) over the whole group; the task
    vectors are computed chunk by chunk into a reused buffer, never whole."""
    if vectors is not None:
        for index, vector in enumerate(vectors(group)):
            flat = _flat32(vector)
            for start, stop in spans(flat):
                yield index, flat[start:stop]
        return
    base = _flat32(group.base)
    experts = [_flat32(expert) for expert in group.experts]
    for start, stop in spans(base):
        chunk = scratch.get("τ", (stop - start,), torch.float32, base.device)
        for index, expert in enumerate(experts):
            torch.sub(expert[start:stop], base[start:stop], out=chunk)
            yield index, chunk


def _kernel_arrays(
    group: TensorGroup, vectors: Vectors | None
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The fused kernels' (base, experts) for the task vectors, or for ``vectors(group)``
    against a zero base: v − 0 is v exactly, so the kernels see the same values."""
    if vectors is None:
        return kernels.as_arrays(group.base, group.experts)
    return kernels.zero_based(vectors(group))


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
    that uses the thresholds. Zeros are never kept on their own account: when fewer
    than k entries are non-zero the threshold is 0 (keep everything).
    """
    if rowwise is None:
        rowwise = vectors is None
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    tasks = pool.tasks
    if density == 1.0:
        return {task: 0.0 for task in tasks}
    total = pool.num_parameters()
    keep = max(1, math.ceil(density * total))
    scratch = Scratch()

    counts = torch.zeros(len(tasks), _BINS, dtype=torch.int64)
    thread_counts = None  # the fused kernel's per-thread counters, summed after the pass
    for group in pool.stream(seed=seed, rowwise=rowwise, desc="τ stats", progress=progress):
        with timed("statistics"):
            if kernels.use_kernels(group.base):
                if thread_counts is None:
                    thread_counts = kernels.block_counts(len(tasks))
                kernels.add_histograms(*_kernel_arrays(group, vectors), thread_counts)
                continue
            device_counts = torch.zeros(len(tasks), _BINS, dtype=torch.int64, device=pool.device)
            for index, chunk in _vector_chunks(group, vectors, scratch):
                bins = scratch.get("bins", chunk.shape, torch.int32, chunk.device)
                device_counts[index] += torch.bincount(magnitude_bins(chunk, bins), minlength=_BINS)
            counts += device_counts.cpu()
    if thread_counts is not None:
        counts += torch.from_numpy(thread_counts.sum(axis=0))

    # bin 0 holds the zeros (and float32's tiniest subnormals); zeros are never counted
    # as kept: after DARE most entries are 0, and the k-th value falling among them means
    # "keep every non-zero entry"
    bins: dict[int, tuple[int, int]] = {}
    thresholds: dict[str, float] = {}
    for index in range(len(tasks)):
        from_top = torch.flip(counts[index], [0]).cumsum(0)
        index_from_top = int(torch.searchsorted(from_top, torch.tensor(keep)))
        above = int(from_top[index_from_top - 1]) if index_from_top > 0 else 0
        bins[index] = (_BINS - 1 - index_from_top, above)

    # the second pass counts the low 16 bits of the entries inside each task's bin: with
    # the bin's top 16 bits they are the whole float32, so the k-th value is found exactly
    # from 65,536 counts per task, never from the bin's values (bf16 experts put millions
    # of equal magnitudes into one bin)
    wanted = np.array([bins[index][0] for index in range(len(tasks))], dtype=np.int32)
    low_counts = torch.zeros(len(tasks), _LOW_BINS, dtype=torch.int64)
    for group in pool.stream(seed=seed, rowwise=rowwise, desc="τ top-k", progress=progress):
        with timed("statistics"):
            if kernels.use_kernels(group.base):
                arrays = _kernel_arrays(group, vectors)
                kernels.add_low_histograms(*arrays, wanted, low_counts.numpy())
                continue
            for index, chunk in _vector_chunks(group, vectors, scratch):
                found = scratch.get("bins", chunk.shape, torch.int32, chunk.device)
                hits = scratch.get("hits", chunk.shape, torch.bool, chunk.device)
                torch.eq(magnitude_bins(chunk, found), bins[index][0], out=hits)
                low = chunk[hits].view(torch.int32).bitwise_and(_LOW_BINS - 1)
                low_counts[index] += torch.bincount(low, minlength=_LOW_BINS).cpu()
    for index, task in enumerate(tasks):
        bin_index, above = bins[index]
        counts_inside = low_counts[index].clone()
        if bin_index == 0:
            counts_inside[0] = 0  # ±0.0: zeros are never kept on their own account
        rank = keep - above  # the k-th value is the rank-th largest inside the bin
        from_top = torch.flip(counts_inside, [0]).cumsum(0)
        if rank <= 0 or int(from_top[-1]) < rank:  # fewer non-zero entries than k: keep all
            thresholds[task] = 0.0
            continue
        low_bits = _LOW_BINS - 1 - int(torch.searchsorted(from_top, torch.tensor(rank)))
        bits = torch.tensor([(bin_index << _SHIFT) | low_bits], dtype=torch.int32)
        thresholds[task] = float(bits.view(torch.float32)[0])
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
        with timed("statistics"):
            value = statistic(group).detach().double().cpu()
        total = value if total is None else total + value
    if total is None:
        raise ValueError("the pool has no mergeable tensors")
    return total
