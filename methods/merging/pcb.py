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
order statistics over the slices (``sliced_top_fraction_masks``): the same merge as the
whole tensor, with memory bounded by one slice per expert.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from harness.merging.sparsify import sliced_top_fraction_masks, top_fraction_mask
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


def _product(vectors: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """τ_i ⊙ τ_j in float64 (one entry-sized temporary at a time, never T of them)."""
    return vectors[i].double() * vectors[j].double()


def _products(vectors: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(i, j, τ_i ⊙ τ_j) for i ≤ j: the products Norm is taken over (symmetric in i, j)."""
    for i in range(vectors.shape[0]):
        for j in range(i, vectors.shape[0]):
            yield i, j, _product(vectors, i, j)


@dataclass
class LayerStatistics:
    """Whole-tensor sums for Norm and Softmax, added up over slices (tasks first)."""

    count: int  # entries of the tensor
    tasks: int
    sums: torch.Tensor  # [T, T, 2]: Σ x and Σ x² of x = τ_i ⊙ τ_j (upper triangle)
    maxima: torch.Tensor | None = None  # [T, T, 2]: max of each Softmax's argument
    exponentials: torch.Tensor | None = None  # [T, T, 2]: Σ exp(argument − max)

    @classmethod
    def empty(cls, count: int, tasks: int) -> LayerStatistics:
        return cls(count, tasks, torch.zeros(tasks, tasks, 2, dtype=torch.float64))

    def add_moments(self, vectors: torch.Tensor) -> None:
        for i, j, product in _products(vectors):
            self.sums[i, j, 0] += product.sum()
            self.sums[i, j, 1] += (product * product).sum()

    def normalised(self, i: int, j: int, product: torch.Tensor) -> torch.Tensor:
        """Norm(τ_i ⊙ τ_j) = (x − mean) / std over the tensor (population std)."""
        mean = self.sums[i, j, 0] / self.count
        variance = (self.sums[i, j, 1] / self.count - mean * mean).clamp(min=0.0)
        std = variance.sqrt()
        return (product - mean) / (std if std > 0 else 1.0)

    def arguments(self, vectors: torch.Tensor) -> Iterator[tuple[int, int, int, torch.Tensor]]:
        """(i, j, kind, argument) for i ≤ j: kind 0 is intra's N·Norm(τ_i²) (i = j only),
        kind 1 inter's Norm(τ_i ⊙ τ_j)."""
        for i, j, product in _products(vectors):
            yield from self._arguments(i, j, product)

    def _arguments(
        self, i: int, j: int, product: torch.Tensor
    ) -> Iterator[tuple[int, int, int, torch.Tensor]]:
        normal = self.normalised(i, j, product)
        if i == j:
            yield i, j, 0, self.tasks * normal
        yield i, j, 1, normal

    def add_exponentials(self, vectors: torch.Tensor) -> None:
        """Online log-sum-exp: running maximum and Σ exp(argument − maximum)."""
        if self.maxima is None:
            self.maxima = torch.full((self.tasks, self.tasks, 2), -torch.inf, dtype=torch.float64)
            self.exponentials = torch.zeros(self.tasks, self.tasks, 2, dtype=torch.float64)
        for i, j, kind, argument in self.arguments(vectors):
            high = torch.maximum(self.maxima[i, j, kind], argument.max())
            self.exponentials[i, j, kind] = (
                self.exponentials[i, j, kind] * torch.exp(self.maxima[i, j, kind] - high)
                + torch.exp(argument - high).sum()
            )
            self.maxima[i, j, kind] = high

    def scores(self, vectors: torch.Tensor) -> torch.Tensor:
        """β_i = Softmax(N·Norm(τ_i²)) ⊙ Σ_j Softmax(Norm(τ_i ⊙ τ_j)) on these entries,
        one task at a time (a few entry-sized float64 temporaries, whatever T)."""
        assert self.maxima is not None and self.exponentials is not None
        scores = torch.empty(vectors.shape, dtype=torch.float32)
        for i in range(vectors.shape[0]):
            intra = inter = None
            for j in range(vectors.shape[0]):
                low, high = min(i, j), max(i, j)  # the statistics hold the upper triangle
                product = _product(vectors, low, high)
                for _, _, kind, argument in self._arguments(low, high, product):
                    log_normaliser = self.maxima[low, high, kind] + torch.log(
                        self.exponentials[low, high, kind]
                    )
                    softmax = torch.exp(argument - log_normaliser)
                    if kind == 0:
                        intra = softmax
                    else:
                        inter = softmax if inter is None else inter + softmax
            assert intra is not None and inter is not None
            scores[i] = intra * inter
        return scores


def balancing_scores(vectors: torch.Tensor) -> torch.Tensor:
    """β_i = β_intra,i ⊙ β_inter,i for task vectors stacked along dim 0."""
    flat = vectors.reshape(vectors.shape[0], -1)
    statistics = LayerStatistics.empty(flat.shape[1], flat.shape[0])
    statistics.add_moments(flat)
    statistics.add_exponentials(flat)
    return statistics.scores(flat).view(vectors.shape)


def balanced_mean(vectors: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """τ_m = Σ_i β̂_i ⊙ τ_i / Σ_i β̂_i (0 where nothing is kept)."""
    weight = kept.sum(dim=0)
    merged = (kept * vectors).sum(dim=0)
    return torch.where(weight > 0, merged / torch.where(weight > 0, weight, 1.0), 0.0)


def pcb_merge(vectors: torch.Tensor, ratio: float) -> torch.Tensor:
    scores = balancing_scores(vectors)
    kept = torch.stack([score * top_fraction_mask(score, ratio) for score in scores])
    return balanced_mean(vectors, kept)


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
    (``sliced_top_fraction_masks``), then the merge. Whole, PCB's float64 scores of an
    8B MLP matrix for eight experts alone would take tens of GB."""
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
                        scores = statistics.scores(vectors)
                    yield (group, vectors, scores), list(scores)

            for (group, vectors, scores), masks in sliced_top_fraction_masks(scored, count, ratio):
                with timed("merge"):
                    kept = scores * torch.stack(masks)
                    result = group.base + scaling * balanced_mean(vectors, kept).view(
                        group.base.shape
                    )
                pool.place(merged, group, result)
    return Solution(state=pool.output_state(merged))


pcb.tensor_merge = pcb_tensor  # type: ignore[attr-defined]
