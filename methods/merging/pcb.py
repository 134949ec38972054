"""PCB-Merging (Du et al., NeurIPS 2024, "Parameter Competition Balancing for Model
Merging").

For N task vectors of one layer (tensor), with Norm a standardisation over the layer's
entries and Softmax over them:

    intra-balancing:  β_intra,i = Softmax(N · Norm(τ_i ⊙ τ_i))
    inter-balancing:  β_inter,i = Σ_j Softmax(Norm(τ_i ⊙ τ_j))
    β_i  = β_intra,i ⊙ β_inter,i
    drop: β̂_i = β_i on the top r fraction of β_i's entries, 0 elsewhere
    τ_m  = Σ_i β̂_i ⊙ τ_i / Σ_i β̂_i
    θ    = θ_0 + λ τ_m

The equations above are the paper's method section as this file states them; its text
could not be re-read in this session. What was checked is the authors' code
(duguodong7/pcb-merging, ``pcb-merging.py`` ``PCB_merge``), which differs in details:
it works on the whole flattened model (not per tensor), clamps |τ| at the 0.01% / 99.99%
quantiles first and merges the clamped τ; Norm is min-max scaling; intra = exp(N ·
Norm(|τ_i|)²) (Softmax without its constant normaliser); inter = tanh(τ_i ⊙ Σ_j τ_j)
instead of Σ_j Softmax(Norm(τ_i ⊙ τ_j)); the kept top-r scores are min-max rescaled
(the threshold maps to 0) before the weighted mean. The harness keeps the paper's
equations, per tensor (the streaming unit), with Norm = (x − mean)/std. Defaults: r =
0.1 is ``PCB_merge``'s default pcb_ratio (their ViT script with evolutionary λ search
uses 0.05; both are in the grid); λ = 1.0 lies in their range (the script searches
per-task λ in [0.8, 1.3] starting at 1.0), grid 0.3–1.5.

Norm and Softmax need statistics of the whole tensor (mean and spread, maximum and
normaliser), and the kept fraction its order statistics. They are computed as sums in
float64 (``LayerStatistics``), so a matrix above the pool's slice size (an LLM's
embedding, an 8B MLP matrix) gets them over its row slices, and its masks from exact
order statistics over the slices (``sliced_rank_masks``): the same merge as the whole
tensor, with memory bounded by one slice per expert. The scores are kept as log β: a
Softmax over millions of entries puts most β below float32's smallest number, and the
weighted mean divides each entry's β̂ by its largest, which leaves the ratio as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from harness.merging.chunks import Scratch, spans
from harness.merging.sparsify import rank_band_masks, sliced_rank_masks
from harness.merging.stream import stack
from harness.merging.timing import timed
from harness.method import MethodContext, Solution
from harness.progress import progress_bar
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

RATIO = Param(
    0.1,
    help="r, the kept fraction of each task's highest balancing scores",
    low=0.001,
    high=1.0,
    grid=[0.05, 0.1, 0.2],
)
SCALING = Param(
    1.0,
    help="λ, the scaling of the balanced task vector",
    low=0.0,
    high=3.0,
    grid=[0.3, 0.5, 0.7, 1.0, 1.2, 1.5],
)


_NEGLIGIBLE = -700.0
"""A Softmax argument below its maximum by more than this adds exp(−700) ≈ 10⁻³⁰⁴ or less
to a normaliser that holds exp(0) = 1 (the maximum's own term): even 10⁹ such terms
cannot move its float64 bits, so they are raised to it before the exponential. Below
about −708 exp is a float64 denormal, which the CPU's vectorised exp computes tens of
times slower (12–95 ns against 0.6 ns an entry measured): for task vectors with heavy
tails, most of the intra-balancing Softmax's N·Norm(τ_i²) is there."""


def _pairs(tasks: int) -> Iterator[tuple[int, int]]:
    """(i, j) with i ≤ j: the products Norm is taken over (symmetric in i, j)."""
    for i in range(tasks):
        for j in range(i, tasks):
            yield i, j


@dataclass
class LayerStatistics:
    """Whole-tensor sums for Norm and Softmax, added up over slices (tasks first). The
    entry-wise work is float64, rounded to float32 only as log-scores, so that a slice
    and the whole tensor give the same bits (float32 exp differs in its last bit between
    vectorised and tail entries).

    Each pass walks its entries in cache-sized chunks (``harness.merging.chunks``)
    through buffers allocated once: for eight experts PCB makes about 160 float64
    temporaries the size of the tensor (a product per expert pair and its Softmax
    argument, in each pass), and as fresh tensors of a whole matrix each was mapped and
    zeroed page by page, which cost more than the arithmetic and the exponentials."""

    count: int  # entries of the tensor
    tasks: int
    sums: torch.Tensor  # [T, T, 2]: Σ x and Σ x² of x = τ_i ⊙ τ_j (upper triangle)
    largest: torch.Tensor  # [T, T]: max of x, which gives each Softmax's maximum argument
    exponentials: torch.Tensor | None = None  # [T, T, 2]: Σ exp(argument − its maximum)
    scratch: Scratch = field(default_factory=Scratch, repr=False)

    @classmethod
    def empty(cls, count: int, tasks: int) -> LayerStatistics:
        return cls(
            count,
            tasks,
            torch.zeros(tasks, tasks, 2, dtype=torch.float64),
            torch.full((tasks, tasks), -torch.inf, dtype=torch.float64),
        )

    def _chunks(self, vectors: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(start, stop, the chunk's task vectors in float64) over the entries."""
        for start, stop in spans(vectors[0]):
            wide = self.scratch.get(
                "wide", (self.tasks, stop - start), torch.float64, vectors.device
            )
            yield start, stop, wide.copy_(vectors[:, start:stop])

    def _product(self, wide: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """τ_i ⊙ τ_j of a chunk, in a reused buffer."""
        product = self.scratch.get("product", wide.shape[1:], torch.float64, wide.device)
        return torch.mul(wide[i], wide[j], out=product)

    def add_moments(self, vectors: torch.Tensor) -> None:
        for _, _, wide in self._chunks(vectors):
            for i, j in _pairs(self.tasks):
                product = self._product(wide, i, j)
                self.sums[i, j, 0] += product.sum()
                self.sums[i, j, 1] += torch.dot(product, product)
                self.largest[i, j] = torch.maximum(self.largest[i, j], product.max())

    def affine(self, i: int, j: int, kind: int) -> tuple[float, float]:
        """(scale, shift) with argument = scale · τ_i ⊙ τ_j + shift: kind 0 is intra's
        N·Norm(τ_i²) (i = j only), kind 1 inter's Norm(τ_i ⊙ τ_j), Norm(x) = (x − mean)
        / std over the tensor (population std). The scale is positive."""
        mean = float(self.sums[i, j, 0]) / self.count
        variance = max(float(self.sums[i, j, 1]) / self.count - mean * mean, 0.0)
        std = math.sqrt(variance)
        scale = (self.tasks if kind == 0 else 1.0) / (std if std > 0 else 1.0)
        return scale, -mean * scale

    def maximum(self, i: int, j: int, kind: int) -> float:
        """The Softmax argument's maximum over the tensor (the scale is positive)."""
        scale, shift = self.affine(i, j, kind)
        return scale * float(self.largest[i, j]) + shift

    def _kinds(self, i: int, j: int) -> tuple[int, ...]:
        return (0, 1) if i == j else (1,)

    def add_exponentials(self, vectors: torch.Tensor) -> None:
        """Σ exp(argument − maximum): the log-sum-exp, once every moment is in."""
        if self.exponentials is None:
            self.exponentials = torch.zeros(self.tasks, self.tasks, 2, dtype=torch.float64)
        for _, _, wide in self._chunks(vectors):
            argument = self.scratch.get("argument", wide.shape[1:], torch.float64, wide.device)
            for i, j in _pairs(self.tasks):
                product = self._product(wide, i, j)
                for kind in self._kinds(i, j):
                    scale, shift = self.affine(i, j, kind)
                    high = self.maximum(i, j, kind)
                    argument = torch.mul(product, scale, out=argument).add_(shift - high)
                    argument.clamp_(min=_NEGLIGIBLE).exp_()
                    self.exponentials[i, j, kind] += argument.sum()

    def log_softmax(self, i: int, j: int, kind: int, product: torch.Tensor) -> torch.Tensor:
        """log Softmax of the argument, computed in place in ``product``."""
        assert self.exponentials is not None
        scale, shift = self.affine(i, j, kind)
        log_normaliser = self.maximum(i, j, kind) + math.log(float(self.exponentials[i, j, kind]))
        return product.mul_(scale).add_(shift - log_normaliser)

    def log_scores(self, vectors: torch.Tensor) -> torch.Tensor:
        """log β_i = log Softmax(N·Norm(τ_i²)) + log Σ_j Softmax(Norm(τ_i ⊙ τ_j)) on these
        entries. In logs because β of a tensor of millions of entries with a heavy tail
        is below float32's range: as float32 β, 99% of a random 2M-entry tensor's scores
        were exactly 0 and the "top r" among them fell by position. The intra term needs
        no exp; each pair's inter Softmax is computed once (T(T+1)/2 exps, added to both
        tasks' sums), where β itself took T² + T."""
        scores = torch.empty(vectors.shape, dtype=torch.float32, device=vectors.device)
        for start, stop, wide in self._chunks(vectors):
            inter = self.scratch.get("inter", wide.shape, torch.float64, wide.device).zero_()
            for i, j in _pairs(self.tasks):
                softmax = self.log_softmax(i, j, 1, self._product(wide, i, j)).exp_()
                inter[i] += softmax
                if j != i:
                    inter[j] += softmax
            for i in range(self.tasks):  # −inf where even float64 underflows: never kept
                intra = self.log_softmax(i, i, 0, self._product(wide, i, i))
                inter[i].log_().add_(intra)
            scores[:, start:stop] = inter
        return scores


def log_balancing_scores(vectors: torch.Tensor) -> torch.Tensor:
    """log β_i = log β_intra,i + log β_inter,i for task vectors stacked along dim 0."""
    flat = vectors.reshape(vectors.shape[0], -1)
    statistics = LayerStatistics.empty(flat.shape[1], flat.shape[0])
    statistics.add_moments(flat)
    statistics.add_exponentials(flat)
    return statistics.log_scores(flat).view(vectors.shape)


def balancing_scores(vectors: torch.Tensor) -> torch.Tensor:
    """β_i = β_intra,i ⊙ β_inter,i (underflows to 0 on large tensors: the merge uses logs)."""
    return log_balancing_scores(vectors).exp()


def drop_keys(log_scores: torch.Tensor) -> torch.Tensor:
    """log T − log β ≥ 0 (β ≤ T): the top r of β are the r smallest keys, which the
    sliced rank masks can select (they rank magnitudes). One new tensor, then in place
    (−s + c is c − s exactly): a [T, n] temporary is mapped page by page."""
    return log_scores.neg().add_(math.log(log_scores.shape[0])).clamp_(min=0.0)


def kept_count(ratio: float, count: int) -> int:
    """How many of a task's ``count`` entries PCB keeps: the top ``ratio``, at least one."""
    return max(1, int(round(ratio * count)))


def kept_masks(log_scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per task, True on the ``ratio`` highest β (ties by position, as when sliced)."""
    keys = drop_keys(log_scores)
    keep = kept_count(ratio, keys[0].numel())
    return torch.stack(rank_band_masks(list(keys), 0, keep))


def balanced_mean(vectors: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """τ_m = Σ_i β̂_i ⊙ τ_i / Σ_i β̂_i (0 where nothing is kept)."""
    weight = kept.sum(dim=0)
    merged = (kept * vectors).sum(dim=0)
    return torch.where(weight > 0, merged / torch.where(weight > 0, weight, 1.0), 0.0)


def balanced_mean_of_logs(
    vectors: torch.Tensor, log_scores: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """The balanced mean with β̂_i = β_i on the kept entries, each entry's β̂ divided by
    its largest (the ratio is the same; the exponentials no longer underflow).

    In chunks of entries, each column's sums over the tasks in the same order; a dropped
    entry's exponential is taken of 0 and then zeroed, since the CPU's vectorised exp
    of −inf is ten times slower than of a finite number."""
    flat_vectors = vectors.reshape(vectors.shape[0], -1)
    flat_scores = log_scores.reshape(flat_vectors.shape)
    flat_masks = masks.reshape(flat_vectors.shape)
    merged = torch.empty(flat_vectors.shape[1], dtype=vectors.dtype, device=vectors.device)
    for start, stop in spans(merged):
        kept = flat_masks[:, start:stop]
        scores = torch.where(kept, flat_scores[:, start:stop], -torch.inf)
        top = scores.max(dim=0).values
        exponent = torch.where(kept, scores - torch.where(top.isfinite(), top, 0.0), 0.0)
        weights = torch.where(kept & top.isfinite(), exponent.exp_(), 0.0)
        merged[start:stop] = balanced_mean(flat_vectors[:, start:stop], weights)
    return merged.view(vectors.shape[1:])


def pcb_merge(vectors: torch.Tensor, ratio: float) -> torch.Tensor:
    log_scores = log_balancing_scores(vectors)
    return balanced_mean_of_logs(vectors, log_scores, kept_masks(log_scores, ratio))


def pcb_tensor(group: TensorGroup, scaling: float, ratio: float) -> torch.Tensor:
    return group.base + scaling * pcb_merge(stack(group.task_vectors), ratio)


@register_method(
    "pcb",
    family="merging",
    reference="https://arxiv.org/abs/2410.02396",
    params={"scaling": SCALING, "ratio": RATIO},
    description="Intra- and inter-task balancing scores, drop low scores, weighted mean.",
)
def pcb(context: MethodContext, scaling: float, ratio: float) -> Solution:
    """Tensor by tensor; a matrix above the pool's slice size (``ExpertPool.pieces``) in
    row slices: moments, then Softmax normalisers, then the masks' three passes
    (``sliced_rank_masks`` over log T − log β), then the merge. Whole, PCB's scores of
    an 8B MLP matrix for eight experts alone would take tens of GB."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}

    def vectors_of(group: TensorGroup) -> torch.Tensor:
        with timed("read"):
            return torch.stack([vector.reshape(-1).float() for vector in group.task_vectors])

    with torch.no_grad():
        for name in progress_bar(pool.mergeable_names(), desc="merge", enabled=context.progress):
            if len(pool.pieces(name, rowwise=True)) == 1:  # small enough to score whole
                for group in pool.groups([name], context.seed):
                    with timed("merge"):
                        result = pcb_tensor(group, scaling, ratio)
                    pool.place(merged, group, result)
                continue
            count = 1
            for size in pool.shape(name):
                count *= size
            statistics = LayerStatistics.empty(count, len(pool.tasks))
            for step in (statistics.add_moments, statistics.add_exponentials):
                for group in pool.groups([name], context.seed, rowwise=True):
                    vectors = vectors_of(group)
                    with timed("statistics"):
                        step(vectors)

            def scored(
                name: str = name, statistics: LayerStatistics = statistics
            ) -> Iterator[tuple[tuple, list[torch.Tensor]]]:
                for group in pool.groups([name], context.seed, rowwise=True):
                    vectors = vectors_of(group)
                    with timed("statistics"):
                        log_scores = statistics.log_scores(vectors)
                    yield (group, vectors, log_scores), list(drop_keys(log_scores))

            keep = kept_count(ratio, count)
            for (group, vectors, log_scores), masks in sliced_rank_masks(scored, count, 0, keep):
                with timed("merge"):
                    merged_vector = balanced_mean_of_logs(vectors, log_scores, torch.stack(masks))
                    result = group.base + scaling * merged_vector.view(group.base.shape)
                pool.place(merged, group, result)
    return Solution(state=pool.output_state(merged))


pcb.tensor_merge = pcb_tensor  # type: ignore[attr-defined]
