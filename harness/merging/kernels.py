"""Fused CPU kernels for the hottest merge passes: TIES' top-k statistics and merge,
the sum of task vectors that task arithmetic and its relatives add to the base,
MagMax's per-entry largest-magnitude pick, the TALL masks of TALL and Consensus,
EMR-Merging's rescaler sums and per-task model, DARE's drop-and-rescale and DELLA's
MagPrune (the random draws stay torch's, from the same generator in the same order).

In torch's eager mode each step of TIES (subtract, |·|, compare, mask, sum, sign,
clamp, count, divide, add) is its own pass over memory: about 35 passes over every
entry of every task vector, even in cache-sized chunks (``harness.merging.chunks``).
These numba kernels do each pass of the algorithm in ONE sweep, reading the base and
the experts once and holding the per-entry work in registers, on every core. They
compute the same float32 operations in the same order as the torch code they replace
(``ties.trimmed_disjoint_merge``, ``task_vectors.magnitude_thresholds``, the methods'
formulas), so the merged weights are bitwise the same; tests check it on adversarial
inputs (ties at the threshold, zeros, signed zeros, sums that cancel). EMR's float64
rescaler sums alone are added in another order (per thread), equal to ~1e-16 relative.

They run on float32 CPU arrays; other dtypes are converted chunk by chunk and a GPU
keeps the torch code, which is already one launch per step over a whole tensor.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange

# numba's "omp" layer shares the OpenMP runtime with torch, and its parallel regions
# changed later torch results (aTLAS trained twice with one seed gave different
# weights); the built-in workqueue layer keeps the two apart. It must not be entered
# from two threads at once, hence the lock around every kernel call.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
_LOCK = threading.Lock()

BINS = 1 << 15  # a float32 magnitude's top 15 bits: exponent and 7 mantissa bits
_BIN_MASK = BINS - 1
LOW_BINS = 1 << 16  # the low 16 bits: within one bin, each is one exact float32 value
_LOW_MASK = LOW_BINS - 1


def use_kernels(tensor: torch.Tensor) -> bool:
    """The fused kernels apply to float32 CPU tensors."""
    return tensor.device.type == "cpu"


def _threads() -> None:
    """Use as many threads as torch does (numba's default is every core)."""
    wanted = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)


def as_arrays(
    base: torch.Tensor, experts: Sequence[torch.Tensor]
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Flat float32 numpy views (copies only for another dtype) of a tensor group."""
    return flat_arrays([base])[0], flat_arrays(experts)


def flat_arrays(tensors: Sequence[torch.Tensor]) -> tuple[np.ndarray, ...]:
    """Flat float32 numpy views (copies only for another dtype) of tensors."""
    _threads()
    return tuple(
        tensor.detach().reshape(-1).to(torch.float32).contiguous().numpy() for tensor in tensors
    )


def zero_based(
    vectors: Sequence[torch.Tensor],
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The kernels' (base, experts) for given vectors (task vectors a method computed,
    keys to rank) against a zero base: v − 0 is v exactly, so they see the same values."""
    return as_arrays(torch.zeros(vectors[0].numel()), vectors)


def fused(
    kernel: Callable[..., None],
    base: torch.Tensor,
    experts: Sequence[torch.Tensor],
    *args: Any,
    **kwargs: Any,
) -> torch.Tensor:
    """``kernel(base, experts, *args, output, **kwargs)`` into a new float32 tensor of the
    base's shape: the call every merge that has a kernel makes."""
    out = torch.empty(base.shape, dtype=torch.float32)
    kernel(*as_arrays(base, experts), *args, out.view(-1).numpy(), **kwargs)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _histograms(base, experts, counts):  # pragma: no cover - compiled
    """counts[block, t, bin] += 1 for each entry of τ_t = experts[t] − base; one
    histogram per block of entries so that threads never share a counter."""
    size = base.size
    blocks = counts.shape[0]
    step = (size + blocks - 1) // blocks
    for block in prange(blocks):
        start = block * step
        stop = min(size, start + step)
        for index in range(start, stop):
            value = base[index]
            for task in range(len(experts)):
                vector = experts[task][index] - value
                counts[block, task, (np.float32(vector).view(np.int32) >> 16) & _BIN_MASK] += 1


def block_counts(tasks: int) -> np.ndarray:
    """Zeroed magnitude-bin counters [threads, tasks, BINS] for ``add_histograms`` to add
    to over every group of a pass; ``.sum(axis=0)`` at the end gives the counts [T, BINS]
    (one set per thread, allocated once per pass rather than once per tensor)."""
    _threads()
    return np.zeros((numba.get_num_threads(), tasks, BINS), dtype=np.int64)


def add_histograms(base: np.ndarray, experts: tuple[np.ndarray, ...], counts: np.ndarray) -> None:
    """Add each task vector's magnitude-bin counts of this group to ``counts`` (from
    ``block_counts``: one row of counters per thread)."""
    with _LOCK:
        _histograms(base, experts, counts)


@njit(inline="always", cache=True)
def _summed(experts, index, value):  # pragma: no cover - compiled
    """Σ_t τ_t at one entry, in task order."""
    total = np.float32(0.0)
    for task in range(len(experts)):
        total += experts[task][index] - value
    return total


@njit(inline="always", cache=True)
def _unified(experts, index, value):  # pragma: no cover - compiled
    """EMR's τ_uni at one entry: the largest |τ_t| agreeing with sgn Σ_t τ_t, signed."""
    sign = np.float32(np.sign(_summed(experts, index, value)))
    largest = np.float32(0.0)
    for task in range(len(experts)):
        vector = experts[task][index] - value
        if np.float32(np.sign(vector)) == sign and abs(vector) > largest:
            largest = abs(vector)
    return sign * largest


@njit(parallel=True, cache=True, nogil=True)
def _max_magnitude_merge(base, experts, scaling, output):  # pragma: no cover - compiled
    for index in prange(base.size):
        value = base[index]
        best = experts[0][index] - value
        for task in range(1, len(experts)):
            vector = experts[task][index] - value
            # the first of equal magnitudes wins, and a NaN once taken stays (torch.argmax)
            if abs(best) == abs(best) and not abs(vector) <= abs(best):
                best = vector
        output[index] = value + scaling * best


def max_magnitude_merge(
    base: np.ndarray, experts: tuple[np.ndarray, ...], scaling: float, output: np.ndarray
) -> None:
    """θ_0 + λ τ_{t*} with t* = argmax_t |τ_t| per entry (MagMax), into ``output``."""
    with _LOCK:
        _max_magnitude_merge(base, experts, np.float32(scaling), output)


@njit(parallel=True, cache=True, nogil=True)
def _tall_mask_merge(base, experts, tall_lambda, scaling, task, k, output):  # pragma: no cover
    zero = np.float32(0.0)
    for index in prange(base.size):
        value = base[index]
        total = _summed(experts, index, value)
        if task >= 0:  # TALL: the one task's mask
            vector = experts[task][index] - value
            kept = abs(vector) > tall_lambda * abs(total - vector)
        else:  # Consensus: the masks of at least k tasks
            count = 0
            for other in range(len(experts)):
                vector = experts[other][index] - value
                if abs(vector) > tall_lambda * abs(total - vector):
                    count += 1
            kept = count >= k
        factor = scaling if kept else zero
        output[index] = value + factor * total


def tall_mask_merge(
    base: np.ndarray,
    experts: tuple[np.ndarray, ...],
    tall_lambda: float,
    scaling: float,
    output: np.ndarray,
    *,
    task: int = -1,
    k: int = 0,
) -> None:
    """θ_0 + α m ⊙ τ_MTL into ``output``, with m = 1{|τ_t| > λ |τ_MTL − τ_t|} of ``task``
    (TALL masks' model for that task) or, with ``k``, 1{at least k tasks' masks}
    (Consensus merging)."""
    with _LOCK:
        _tall_mask_merge(
            base, experts, np.float32(tall_lambda), np.float32(scaling), task, k, output
        )


@njit(parallel=True, cache=True, nogil=True)
def _emr_merge(base, experts, task, rescaler, output):  # pragma: no cover - compiled
    zero = np.float32(0.0)
    for index in prange(base.size):
        value = base[index]
        unified = _unified(experts, index, value)
        kept = (experts[task][index] - value) * unified > zero  # M_t
        factor = rescaler if kept else zero
        output[index] = value + factor * unified


def emr_merge(
    base: np.ndarray,
    experts: tuple[np.ndarray, ...],
    task: int,
    rescaler: float,
    output: np.ndarray,
) -> None:
    """EMR-Merging's model for ``task``, θ_0 + λ_t M_t ⊙ τ_uni, into ``output``."""
    with _LOCK:
        _emr_merge(base, experts, task, np.float32(rescaler), output)


@njit(parallel=True, cache=True, nogil=True)
def _dare_sum_merge(base, experts, draws, drop, divisor, scaling, output):  # pragma: no cover
    zero = np.float32(0.0)
    for index in prange(base.size):
        value = base[index]
        total = zero
        for task in range(len(experts)):
            if draws[task][index] >= drop:  # kept, rescaled by 1 / (1 − p)
                total += (experts[task][index] - value) / divisor
            else:
                total += zero
        output[index] = value + scaling * total


def dare_sum_merge(
    base: np.ndarray,
    experts: tuple[np.ndarray, ...],
    draws: tuple[np.ndarray, ...],
    drop: float,
    scaling: float,
    output: np.ndarray,
) -> None:
    """θ_0 + λ Σ_t DARE(τ_t) into ``output``, entry j of τ_t kept where draws[t][j] ≥ p
    (compared in float32, as torch compares a float32 tensor with a number)."""
    with _LOCK:
        _dare_sum_merge(
            base,
            experts,
            draws,
            np.float32(drop),
            np.float32(1.0 - drop),
            np.float32(scaling),
            output,
        )


@njit(parallel=True, cache=True, nogil=True)
def _emr_sums(base, experts, sums):  # pragma: no cover - compiled
    """sums[block, t] += (|τ_t|, |M_t ⊙ τ_uni|) in float64, one row per block of entries."""
    size = base.size
    blocks = sums.shape[0]
    step = (size + blocks - 1) // blocks
    zero = np.float32(0.0)
    for block in prange(blocks):
        for index in range(block * step, min(size, block * step + step)):
            value = base[index]
            unified = _unified(experts, index, value)
            for task in range(len(experts)):
                vector = experts[task][index] - value
                sums[block, task, 0] += abs(vector)
                if vector * unified > zero:
                    sums[block, task, 1] += abs(unified)


def emr_sums(base: np.ndarray, experts: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per task [Σ|τ_t|, Σ|M_t ⊙ τ_uni|] over this tensor in float64 ([T, 2]): EMR's
    rescaler sums, the same values as the torch code summed in another order (equal to
    float64 rounding, ~1e-16 relative)."""
    sums = np.zeros((numba.get_num_threads(), len(experts), 2), dtype=np.float64)
    with _LOCK:
        _emr_sums(base, experts, sums)
    return sums.sum(axis=0)


@njit(parallel=True, cache=True, nogil=True)
def _dare_vector(base, expert, draws, drop, divisor, output):  # pragma: no cover - compiled
    zero = np.float32(0.0)
    for index in prange(base.size):
        if draws[index] >= drop:
            output[index] = (expert[index] - base[index]) / divisor
        else:
            output[index] = zero


def dare_vector(
    base: np.ndarray, expert: np.ndarray, draws: np.ndarray, drop: float, output: np.ndarray
) -> None:
    """DARE(θ_t − θ_0) into ``output``: kept where draws ≥ p (in float32), rescaled by
    float32(1 − p), else 0, as ``sparsify.dare`` computes it."""
    with _LOCK:
        _dare_vector(base, expert, draws, np.float32(drop), np.float32(1.0 - drop), output)


_MAGNITUDE_BITS = np.uint32(0x7FFFFFFF)  # a float32's bits without the sign: |x|
_NAN_KEY = np.uint32(0x7F800001)  # every NaN's key: above +inf, equal to each other


@njit(cache=True, nogil=True)
def _magnitude_order(row):  # pragma: no cover - compiled
    """The stable argsort of |row| (ties by position, NaN last), by an LSD
    radix sort of the magnitudes' bits, a byte per pass: the bits of a non-negative
    float32 order as its values, and each pass is stable. A pass whose byte is the same
    for every entry (often the low bytes of bf16 task vectors) is skipped. 3x faster
    than numba's mergesort on 2,048- and 8,192-entry rows."""
    size = row.size
    bits = row.view(np.uint32)
    order = np.empty(size, dtype=np.int64)
    keys = np.empty(size, dtype=np.uint32)
    counts = np.zeros((4, 256), dtype=np.int64)
    for index in range(size):
        key = bits[index] & _MAGNITUDE_BITS
        if key > np.uint32(0x7F800000):
            key = _NAN_KEY
        keys[index] = key
        order[index] = index
        counts[0, key & 255] += 1
        counts[1, (key >> 8) & 255] += 1
        counts[2, (key >> 16) & 255] += 1
        counts[3, key >> 24] += 1
    source_keys, source = keys, order
    target_keys, target = np.empty_like(keys), np.empty_like(order)
    for byte in range(4):
        shift = 8 * byte
        if size == 0 or counts[byte, (keys[0] >> shift) & 255] == size:
            continue  # one value of this byte: the pass would leave the order as it is
        start = 0
        for value in range(256):
            count = counts[byte, value]
            counts[byte, value] = start
            start += count
        for index in range(size):
            key = source_keys[index]
            value = (key >> shift) & 255
            position = counts[byte, value]
            target_keys[position] = key
            target[position] = source[index]
            counts[byte, value] = position + 1
        source_keys, source, target_keys, target = target_keys, target, source_keys, source
    return source


@njit(parallel=True, cache=True, nogil=True)
def _magprune_rows(vector, draws, highest, epsilon, last, output):  # pragma: no cover
    zero = np.float32(0.0)
    one = np.float32(1.0)
    size = vector.shape[1]
    for row in prange(vector.shape[0]):
        order = _magnitude_order(vector[row])
        for rank in range(size):
            column = order[rank]
            probability = highest - epsilon * (np.float32(rank) / last)
            if draws[row, column] >= probability:
                output[row, column] = vector[row, column] / (one - probability)
            else:
                output[row, column] = zero


def magprune_rows(
    vector: np.ndarray,
    draws: np.ndarray,
    drop: float,
    epsilon: float,
    output: np.ndarray,
) -> None:
    """DELLA's MagPrune of a 2-D float32 ``vector`` (ranks within each row, at least two
    columns) into ``output``, as ``sparsify.magprune`` computes it in float32."""
    last = np.float32(vector.shape[1] - 1)
    highest = np.float32(drop + epsilon / 2)
    with _LOCK:
        _magprune_rows(vector, draws, highest, np.float32(epsilon), last, output)


def warm_up() -> float:
    """Start numba's threads and load the compiled kernels (about 0.3 s, once per
    process, on the first parallel call); returns the seconds it took."""
    import time

    started = time.perf_counter()
    zeros = np.zeros(1, dtype=np.float32)
    add_histograms(zeros, (zeros,), block_counts(1))
    low_counts = np.zeros((1, LOW_BINS), dtype=np.int64)
    add_low_histograms(zeros, (zeros,), np.zeros(1, dtype=np.int32), low_counts)
    ties_merge(zeros, (zeros,), [0.0], 1.0, np.empty(1, dtype=np.float32))
    task_vector_sum(zeros, (zeros,), np.empty(1, dtype=np.float32))
    max_magnitude_merge(zeros, (zeros,), 1.0, np.empty(1, dtype=np.float32))
    tall_mask_merge(zeros, (zeros,), 0.4, 1.0, np.empty(1, dtype=np.float32), task=0)
    emr_merge(zeros, (zeros,), 0, 1.0, np.empty(1, dtype=np.float32))
    emr_sums(zeros, (zeros,))
    dare_vector(zeros, zeros, zeros, 0.5, np.empty(1, dtype=np.float32))
    square = np.zeros((1, 2), dtype=np.float32)
    magprune_rows(square, square, 0.5, 0.1, np.empty((1, 2), dtype=np.float32))
    dare_sum_merge(zeros, (zeros,), (zeros,), 0.5, 1.0, np.empty(1, dtype=np.float32))
    bounds, ties = np.zeros((1, 2), dtype=np.float32), np.zeros((1, 2), dtype=np.int64)
    orders = tie_counts((zeros,), bounds)
    masks = np.empty((1, 1), dtype=np.bool_)
    rank_band_masks((zeros,), bounds, ties, np.ones((1, 2), dtype=np.bool_), orders, masks)
    return time.perf_counter() - started


@njit(parallel=True, cache=True, nogil=True)
def _low_histograms(base, experts, bins, counts):  # pragma: no cover - compiled
    """counts[t, low 16 bits] += 1 for each entry of τ_t whose magnitude bin is bins[t]."""
    size = base.size
    for task in prange(len(experts)):
        expert = experts[task]
        wanted = bins[task]
        for index in range(size):
            bits = np.float32(expert[index] - base[index]).view(np.int32)
            if ((bits >> 16) & _BIN_MASK) == wanted:
                counts[task, bits & _LOW_MASK] += 1


def add_low_histograms(
    base: np.ndarray, experts: tuple[np.ndarray, ...], bins: np.ndarray, counts: np.ndarray
) -> None:
    """Add, per task, the low-16-bit counts of the entries in its threshold bin
    (``counts`` [T, LOW_BINS]): with the bin they give the exact k-th magnitude."""
    with _LOCK:
        _low_histograms(base, experts, bins, counts)


@njit(parallel=True, cache=True, nogil=True)
def _ties_merge(base, experts, limits, scaling, output):  # pragma: no cover - compiled
    zero = np.float32(0.0)
    for index in prange(base.size):
        value = base[index]
        total = zero
        for task in range(len(experts)):  # trim, then elect: γ = sgn Σ τ̂_t
            vector = experts[task][index] - value
            if abs(vector) >= limits[task]:
                total += vector
        sign = np.float32(np.sign(total))
        kept = zero
        agreeing = 0
        for task in range(len(experts)):  # disjoint mean over τ̂_t with γ·τ̂_t > 0
            vector = experts[task][index] - value
            if abs(vector) >= limits[task]:
                signed = vector * sign
                if signed > zero:
                    kept += signed
                    agreeing += 1
        kept = kept * sign
        if agreeing == 0:
            agreeing = 1
        output[index] = value + (kept / np.float32(agreeing)) * scaling


def ties_merge(
    base: np.ndarray,
    experts: tuple[np.ndarray, ...],
    limits: Sequence[float],
    scaling: float,
    output: np.ndarray,
) -> None:
    """θ_0 + λ · disjoint mean of the trimmed task vectors, into ``output`` (float32)."""
    with _LOCK:
        _ties_merge(
            base,
            experts,
            np.asarray(limits, dtype=np.float32),
            np.float32(scaling),
            output,
        )


@njit(parallel=True, cache=True, nogil=True)
def _task_vector_sum(base, experts, output):  # pragma: no cover - compiled
    for index in prange(base.size):
        output[index] = _summed(experts, index, base[index])


def task_vector_sum(base: np.ndarray, experts: tuple[np.ndarray, ...], output: np.ndarray) -> None:
    """Σ_t (θ_t − θ_0) into ``output`` (float32), summed in task order."""
    with _LOCK:
        _task_vector_sum(base, experts, output)


@njit(inline="always", cache=True)
def _block_span(size, blocks, block):  # pragma: no cover - compiled
    """[start, stop) of one of ``blocks`` equal runs of ``size`` entries."""
    step = (size + blocks - 1) // blocks
    start = min(size, block * step)
    return start, min(size, start + step)


@njit(parallel=True, cache=True, nogil=True)
def _tie_counts(keys, values, counts):  # pragma: no cover - compiled
    """counts[block, t, b] = entries of the block with |keys[t]| == values[t, b]."""
    blocks = counts.shape[0]
    for block in prange(blocks):
        start, stop = _block_span(keys[0].size, blocks, block)
        for task in range(len(keys)):
            key = keys[task]
            for bound in range(values.shape[1]):
                value = values[task, bound]
                total = 0
                for index in range(start, stop):
                    if abs(key[index]) == value:
                        total += 1
                counts[block, task, bound] = total


def tie_counts(keys: tuple[np.ndarray, ...], values: np.ndarray) -> np.ndarray:
    """How many entries of each block of each task equal each rank bound's magnitude
    (values [T, 2]): [blocks, T, 2], so that every block knows the ties before it."""
    _threads()
    counts = np.zeros((4 * numba.get_num_threads(), len(keys), values.shape[1]), dtype=np.int64)
    with _LOCK:
        _tie_counts(keys, values, counts)
    return counts


@njit(parallel=True, cache=True, nogil=True)
def _rank_band_masks(keys, values, ties, active, orders, output):  # pragma: no cover
    blocks = orders.shape[0]
    for block in prange(blocks):
        start, stop = _block_span(keys[0].size, blocks, block)
        for task in range(len(keys)):
            key = keys[task]
            low, high = values[task, 0], values[task, 1]
            low_order, high_order = orders[block, task, 0], orders[block, task, 1]
            for index in range(start, stop):
                magnitude = abs(key[index])
                keep = True
                if active[task, 0]:  # rank ≥ low: above the value, or a late enough tie
                    equal = magnitude == low
                    keep = magnitude > low or (equal and low_order >= ties[task, 0])
                    if equal:
                        low_order += 1
                if active[task, 1]:  # rank < high: below the value, or an early enough tie
                    equal = magnitude == high
                    keep = keep and (magnitude < high or (equal and high_order < ties[task, 1]))
                    if equal:
                        high_order += 1
                output[task, index] = keep


def rank_band_masks(
    keys: tuple[np.ndarray, ...],
    values: np.ndarray,
    ties: np.ndarray,
    active: np.ndarray,
    orders: np.ndarray,
    output: np.ndarray,
) -> None:
    """output[t] = rank of |keys[t]| in [low, high) with ranks given by their boundary
    values (values [T, 2], float32) and, for entries equal to one, by position: a tie
    counts as above the low bound from its ``ties[t, 0]``-th occurrence and below the
    high bound up to its ``ties[t, 1]``-th, ``orders`` [blocks, T, 2] (from
    ``tie_counts``) being the occurrences before each block; ``active`` [T, 2] says
    which bounds apply."""
    with _LOCK:
        _rank_band_masks(keys, values, ties, active, orders, output)
