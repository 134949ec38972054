"""Per-tensor sparsification shared by merging methods: random drops, magnitude bands,
score-based top-k masks.

Every function takes one tensor (one parameter of one task vector) and works on the
tensor's own device; random draws come from the caller's generator (``group.generator()``,
seeded by the run seed and the tensor name), so a seed fixes the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
import torch

from harness.errors import HyperparameterError
from harness.merging import kernels
from harness.merging.task_vectors import _BINS, _LOW_BINS, _SHIFT, magnitude_bins

T = TypeVar("T")


def uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) draws of ``like``'s shape (float32, on its device) from ``generator``."""
    device = generator.device if generator is not None else like.device
    draws = torch.rand(like.shape, generator=generator, device=device, dtype=torch.float32)
    return draws.to(like.device)


def check_drop(drop: float) -> None:
    if not 0.0 <= drop < 1.0:
        raise HyperparameterError(f"the DARE drop rate must be in [0, 1), got {drop}")


def dare(vector: torch.Tensor, drop: float, generator: torch.Generator | None) -> torch.Tensor:
    """DARE (Yu et al., 2024): drop each entry with probability ``drop``, rescale the rest
    by 1 / (1 − drop), so that E[dare(τ)] = τ."""
    check_drop(drop)
    if drop == 0.0:
        return vector.clone()
    keep = uniform(vector, generator) >= drop
    return torch.where(keep, vector / (1.0 - drop), torch.zeros_like(vector))


def magnitude_ranks(vector: torch.Tensor) -> torch.Tensor:
    """Rank of each entry's |value| within the tensor, 0 = smallest (ties by position)."""
    return value_ranks(vector.detach().abs())


def value_ranks(values: torch.Tensor) -> torch.Tensor:
    """Rank of each entry's value within the tensor, 0 = smallest (ties by position)."""
    flat = values.detach().flatten()
    order = torch.argsort(flat, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(flat.numel(), device=flat.device)
    return ranks.view(values.shape)


def magnitude_band_mask(vector: torch.Tensor, bottom: float, top: float) -> torch.Tensor:
    """Model Breadcrumbs' mask: drop the ``top`` fraction of largest magnitudes (outliers)
    and the smallest ones, keeping a band of ⌊(1 − bottom − top)·n⌋ entries just below
    the outliers (n = the tensor's size).

    Counts are truncated as both reference implementations do: ⌊top·n⌋ outliers (mergekit
    ``magnitude_outliers`` ``int(gamma * n)``, the authors' ``int(n * top_k_remove)``) and
    ⌊keep·n⌋ kept (mergekit ``int(density * n)``, the authors' ``int(n * top_k_keep)``);
    the bottom gets the rest, n − kept − outliers, which can be one or two entries more
    than ⌊bottom·n⌋. With top·n < 1 no outlier is removed and the band reaches the
    largest entry (as in the authors' code); mergekit then keeps nothing (its slice
    ``indices[n_bot:-0]`` is empty), which is a bug we do not reproduce.
    """
    if bottom < 0 or top < 0 or bottom + top > 1:
        raise HyperparameterError(
            f"breadcrumbs needs bottom, top ≥ 0 and bottom + top ≤ 1, got {bottom} and {top}"
        )
    count = vector.numel()
    outliers = _truncated_count(top, count)
    kept = _truncated_count(1.0 - bottom - top, count)
    high = count - outliers
    low = high - kept
    return rank_band_masks([vector], low, high)[0]


def _truncated_count(fraction: float, count: int) -> int:
    """⌊fraction·count⌋, where a product a rounding error below a whole number (e.g.
    (1 − 0.8 − 0.01)·100 = 18.999…) counts as that number."""
    return max(0, min(count, math.floor(fraction * count + 1e-6)))


def magprune(
    vector: torch.Tensor, drop: float, epsilon: float, generator: torch.Generator | None
) -> torch.Tensor:
    """DELLA's MagPrune on one tensor: entries ranked by magnitude (within each row of a
    2-D weight, within the tensor otherwise) get drop probabilities spaced evenly in
    [drop − ε/2, drop + ε/2], the largest magnitude the lowest; kept entries are
    rescaled by 1 / (1 − p_i), so each keeps its expectation."""
    if epsilon < 0 or drop - epsilon / 2 < 0 or drop + epsilon / 2 >= 1:
        raise HyperparameterError(
            f"della needs 0 ≤ drop − epsilon/2 and drop + epsilon/2 < 1, "
            f"got drop={drop}, epsilon={epsilon}"
        )
    fused = vector.ndim == 2 and vector.shape[1] > 1 and vector.dtype == torch.float32
    if fused and kernels.use_kernels(vector):  # one sweep per row on a CPU: the same numbers
        draws = uniform(vector, generator)
        output = torch.empty(vector.shape, dtype=torch.float32)
        source = vector.detach().contiguous().numpy()
        kernels.magprune_rows(source, draws.numpy(), drop, epsilon, output.numpy())
        return output
    if vector.ndim == 2:  # rank within each row, DELLA's row-wise ranking
        count = vector.shape[1]
        order = torch.argsort(vector.detach().abs(), dim=1, stable=True)
        ranks = torch.empty_like(order)
        positions = torch.arange(count, device=vector.device).expand_as(order)
        ranks.scatter_(1, order, positions)
        ranks = ranks.to(torch.float32)
    else:
        count = vector.numel()
        ranks = magnitude_ranks(vector).to(torch.float32)
    spread = ranks / (count - 1) if count > 1 else torch.full_like(ranks, 0.5)
    probability = (drop + epsilon / 2) - epsilon * spread  # smallest |τ| → drop + ε/2
    keep = uniform(vector, generator) >= probability
    scaled = vector / (1.0 - probability).to(vector.dtype)
    return torch.where(keep, scaled, torch.zeros_like(vector))


def top_fraction_mask(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """True on the ``fraction`` largest entries of ``scores`` (at least one entry)."""
    count = scores.numel()
    keep = max(1, int(round(fraction * count)))
    if keep >= count:
        return torch.ones_like(scores, dtype=torch.bool)
    return value_ranks(scores) >= count - keep


def sliced_band_masks(
    slices: Callable[[], Iterator[tuple[T, list[torch.Tensor]]]],
    count: int,
    bottom: float,
    top: float,
) -> Iterator[tuple[T, list[torch.Tensor]]]:
    """``magnitude_band_mask`` of each task's vector over a whole tensor too large to hold
    whole, yielded slice by slice: the same masks, ties broken by position as there
    (``sliced_rank_masks`` with Breadcrumbs' truncated counts)."""
    if bottom < 0 or top < 0 or bottom + top > 1:
        raise HyperparameterError(
            f"breadcrumbs needs bottom, top ≥ 0 and bottom + top ≤ 1, got {bottom} and {top}"
        )
    high = count - _truncated_count(top, count)
    low = high - _truncated_count(1.0 - bottom - top, count)
    return sliced_rank_masks(slices, count, low, high)


def rank_band_masks(vectors: list[torch.Tensor], low: int, high: int) -> list[torch.Tensor]:
    """Per vector (tensors of one size), True where |v|'s rank in its tensor (0 = smallest,
    ties by position) lies in [low, high). On the CPU from exact order statistics
    (``sliced_rank_masks`` over the whole tensor as one slice: two histogram sweeps and a
    mask sweep in fused kernels), elsewhere from a sort; the masks are the same."""
    flat = [vector.detach().reshape(-1) for vector in vectors]
    if _fused(flat):
        count = flat[0].numel()
        _, masks = next(sliced_rank_masks(lambda: iter([(None, flat)]), count, low, high))
    else:
        masks = [(ranks >= low) & (ranks < high) for ranks in map(magnitude_ranks, flat)]
    return [mask.view(vector.shape) for mask, vector in zip(masks, vectors)]


def _fused(vectors: list[torch.Tensor]) -> bool:
    """Whether the fused kernels take these flat chunks: float32 (their values exactly) on
    the CPU."""
    return all(kernels.use_kernels(v) and v.dtype == torch.float32 for v in vectors)


def sliced_rank_masks(
    slices: Callable[[], Iterator[tuple[T, list[torch.Tensor]]]],
    count: int,
    low: int,
    high: int,
) -> Iterator[tuple[T, list[torch.Tensor]]]:
    """Per task, True on the entries whose rank by magnitude over the whole tensor (0 =
    smallest, ties by position, as ``magnitude_ranks``) lies in [low, high), yielded
    slice by slice for a tensor too large to hold whole.

    ``slices()`` streams the tensor's row slices as (payload, one flat float32 chunk per
    task), in order; the masks come back with the payload. It is called three times: a
    histogram of |τ| per task locates the bins of the two rank boundaries, a second pass
    counts the low 16 bits inside them, which give the exact boundary values (and how
    many entries lie strictly below), and the third yields masks, counting equal entries
    across slices so that a tie at a boundary falls by position. On the CPU each pass is
    one fused kernel sweep (``kernels``); elsewhere torch's.
    """
    wanted = [rank for rank in (low, high) if 0 < rank < count]  # others bound nothing
    located = []  # per task, per wanted rank: (bin, entries in lower bins)
    for counts in _magnitude_histograms(slices):
        cumulative = counts.cumsum(0)
        places = []
        for rank in wanted:
            bin_index = int(torch.searchsorted(cumulative, torch.tensor(rank), right=True))
            places.append((bin_index, int(cumulative[bin_index - 1]) if bin_index else 0))
        located.append(places)
    low_counts = _boundary_low_counts(slices, located)
    bounds = []  # per task, per wanted rank: (value at the rank, entries strictly below)
    for index, places in enumerate(located):
        task_bounds = {}
        for which, (rank, (bin_index, below)) in enumerate(zip(wanted, places)):
            cumulative = low_counts[index][which].cumsum(0)  # ascending, as the ranks
            position = torch.tensor(rank - below)
            low_bits = int(torch.searchsorted(cumulative, position, right=True))
            bits = torch.tensor([(bin_index << _SHIFT) | low_bits], dtype=torch.int32)
            value = float(bits.view(torch.float32)[0])
            smaller = int(cumulative[low_bits - 1]) if low_bits else 0
            task_bounds[rank] = (value, below + smaller)
        bounds.append(task_bounds)
    values, ties, active = _band_bounds(bounds, low, high)
    seen = np.zeros(ties.shape, dtype=np.int64)  # ties met in earlier slices, per bound
    for payload, vectors in slices():
        if _fused(vectors):
            masks = _kernel_masks(vectors, values, ties, active, seen)
        else:
            masks = [
                _torch_mask(vector, values[index], ties[index], active[index], seen[index])
                for index, vector in enumerate(vectors)
            ]
        if low >= count:
            masks = [mask.zero_() for mask in masks]
        yield payload, masks


def _magnitude_histograms(
    slices: Callable[[], Iterator[tuple[T, list[torch.Tensor]]]],
) -> list[torch.Tensor]:
    """Per task, the counts of |v| in each magnitude bin over all slices."""
    histograms: list[torch.Tensor] = []
    thread_counts = None
    for _, vectors in slices():
        if _fused(vectors):
            if thread_counts is None:
                thread_counts = kernels.block_counts(len(vectors))
            kernels.add_histograms(*kernels.zero_based(vectors), thread_counts)
            continue
        for index, vector in enumerate(vectors):
            bins = magnitude_bins(vector, torch.empty(vector.shape, dtype=torch.int32))
            counts = torch.bincount(bins, minlength=_BINS).cpu()
            if index == len(histograms):
                histograms.append(counts)
            else:
                histograms[index] += counts
    if thread_counts is None:
        return histograms
    fused = list(torch.from_numpy(thread_counts.sum(axis=0)))  # per task
    return [counts + other for counts, other in zip(fused, histograms)] if histograms else fused


def _boundary_low_counts(
    slices: Callable[[], Iterator[tuple[T, list[torch.Tensor]]]],
    located: list[list[tuple[int, int]]],
) -> list[list[torch.Tensor]]:
    """Per task and boundary, the counts of the low 16 bits of the entries in the
    boundary's bin: with the bin they are the exact value, so equal magnitudes (millions,
    with bf16 experts) cost one counter, not one gathered value each."""
    wanted = len(located[0]) if located else 0
    low_counts = [
        [torch.zeros(_LOW_BINS, dtype=torch.int64) for _ in range(wanted)] for _ in located
    ]
    for _, vectors in slices() if wanted else ():
        if _fused(vectors):
            arrays = kernels.zero_based(vectors)
            for which in range(wanted):
                bins = np.array([places[which][0] for places in located], dtype=np.int32)
                counts = np.zeros((len(located), _LOW_BINS), dtype=np.int64)
                kernels.add_low_histograms(*arrays, bins, counts)
                for index in range(len(located)):
                    low_counts[index][which] += torch.from_numpy(counts[index])
            continue
        for index, vector in enumerate(vectors):
            bins = magnitude_bins(vector, torch.empty(vector.shape, dtype=torch.int32))
            for which, (bin_index, _) in enumerate(located[index]):
                inside = vector[bins == bin_index].view(torch.int32).bitwise_and(_LOW_BINS - 1)
                low_counts[index][which] += torch.bincount(inside, minlength=_LOW_BINS).cpu()
    return low_counts


def _band_bounds(
    bounds: list[dict[int, tuple[float, int]]], low: int, high: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task, the low and the high bound (rank → (value, entries below) in ``bounds``)
    as arrays [T, 2]: the boundary magnitude, the tie from which (low) or up to which
    (high) entries equal to it lie inside the band, and whether the bound applies."""
    values = np.zeros((len(bounds), 2), dtype=np.float32)
    ties = np.zeros((len(bounds), 2), dtype=np.int64)
    active = np.zeros((len(bounds), 2), dtype=np.bool_)
    for index, task_bounds in enumerate(bounds):
        for slot, rank in enumerate((low, high)):
            if rank in task_bounds:
                value, below = task_bounds[rank]
                values[index, slot], ties[index, slot] = value, rank - below
                active[index, slot] = True
    return values, ties, active


def _torch_mask(
    vector: torch.Tensor,
    values: np.ndarray,
    ties: np.ndarray,
    active: np.ndarray,
    seen: np.ndarray,
) -> torch.Tensor:
    """One task's mask on one slice (its row of ``_band_bounds``); ``seen`` counts the
    ties met in earlier slices and is advanced."""
    magnitude = vector.abs()
    mask = torch.ones(vector.shape, dtype=torch.bool, device=vector.device)
    for slot in np.flatnonzero(active):
        value = float(values[slot])
        equal = magnitude == value
        order = int(seen[slot]) + torch.cumsum(equal, 0) - 1  # position among ties
        seen[slot] += int(equal.sum())
        if slot == 0:  # rank ≥ low
            mask &= (magnitude > value) | (equal & (order >= int(ties[slot])))
        else:  # rank < high
            mask &= (magnitude < value) | (equal & (order < int(ties[slot])))
    return mask


def _kernel_masks(
    vectors: list[torch.Tensor],
    values: np.ndarray,
    ties: np.ndarray,
    active: np.ndarray,
    seen: np.ndarray,
) -> list[torch.Tensor]:
    """Every task's mask on one slice by the fused kernels (``_torch_mask``'s rule)."""
    keys = kernels.flat_arrays(vectors)
    counts = kernels.tie_counts(keys, values)
    orders = seen[None] + np.cumsum(counts, axis=0) - counts  # ties before each block
    seen += counts.sum(axis=0)
    output = torch.empty((len(vectors), vectors[0].numel()), dtype=torch.bool)
    kernels.rank_band_masks(keys, values, ties, active, orders, output.numpy())
    return list(output)
