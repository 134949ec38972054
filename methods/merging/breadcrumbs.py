"""Model Breadcrumbs (Davari & Belilovsky, ECCV 2024, "Model Breadcrumbs: Scaling
Multi-Task Model Merging with Sparse Masks").

Per layer (tensor) ℓ and task t, sort |τ_t^ℓ| and mask both tails:

    m_t^ℓ = 1 where the magnitude rank of τ_t^ℓ lies above the bottom β fraction (small,
            noisy updates) and below the top γ fraction (large outliers)
    θ     = θ_0 + α Σ_t m_t ⊙ τ_t

Checked against the authors' code (rezazzr/breadcrumbs, ``src/task_vectors.py``
``TaskVectorMiddleKeep`` and ``find_best_hyperparam.py``, method ``middle_keep``): each
task vector is masked tensor by tensor, first zeroing the ⌊γ·n⌋ largest magnitudes,
then keeping the next ⌊β_keep·n⌋ (the band just below the outliers), and the masked
vectors are summed and added with α. Their search space is β_keep ∈ [0.05, 0.20], γ ∈
[0.001, 0.01], α ∈ [0.01, 1], starting from β_keep = 0.15, γ = 0.006, α = 0.2. In the
paper's notation (β = the masked bottom fraction) β_keep = 1 − β − γ: the band kept
here has ⌊(1 − β − γ)·n⌋ entries, so the authors' start is β = 0.844, and the default
β = 0.85 with γ = 0.01 keeps 14% of each tensor (inside their 5–20%). γ = 0.01 is the
top of their search range (the grid also tries 0.001 and the starting point 0.006);
the paper's table value of γ could not be read in this session (re-implementations of
the paper use the percentile 0.993, i.e. top 0.7%). α = 0.3 is task arithmetic's CLIP
value, inside the authors' range (their start is 0.2).

Counts (``harness.merging.sparsify.magnitude_band_mask``): ⌊γ·n⌋ outliers and
⌊(1 − β − γ)·n⌋ kept entries, truncated as the authors' code and mergekit
(``breadcrumbs``, ``sparsify.magnitude_outliers`` with density = 1 − β − γ) truncate;
the bottom mask takes the remaining entries. With γ·n < 1 (the grid's γ = 0.001 on any
tensor of fewer than 1,000 entries: biases, LayerNorms, small towers) no outlier is
removed and the band reaches the largest entry, as in the authors' code; this is the
right reading of "mask the top γ fraction" when that fraction is less than one entry.
mergekit instead returns an all-zero tensor there (a slice ``[n_bot:-0]``), so its
weights differ on such tensors.

Deviation: the authors' code ranks magnitudes along the last dimension (each row of a
2-D weight; 1-D tensors as a whole), the paper says "layer-wise"; here the ranking is
over the whole tensor, as the paper describes and as mergekit does.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from harness.merging.sparsify import magnitude_band_mask, sliced_band_masks
from harness.merging.timing import timed
from harness.method import MethodContext, Solution
from harness.progress import progress_bar
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.task_arithmetic import SCALING

BOTTOM = Param(
    0.85,
    help="β, the fraction of smallest-magnitude entries masked per tensor",
    low=0.0,
    high=0.99,
    grid=[0.8, 0.85, 0.9],
)
TOP = Param(
    0.01,
    help="γ, the fraction of largest-magnitude entries (outliers) masked per tensor",
    low=0.0,
    high=0.5,
    grid=[0.001, 0.006, 0.01],
)


def breadcrumbs_tensor(
    group: TensorGroup, scaling: float, bottom: float, top: float
) -> torch.Tensor:
    """The merge of one whole tensor: θ_0 + α Σ_t m_t ⊙ τ_t."""
    merged = torch.zeros_like(group.base)
    for vector in group.task_vectors:
        merged += vector * magnitude_band_mask(vector, bottom, top)
    return group.base + scaling * merged


@register_method(
    "breadcrumbs",
    family="merging",
    reference="https://arxiv.org/abs/2312.06795",
    params={"scaling": SCALING, "bottom": BOTTOM, "top": TOP},
    description="Mask both tails (small and outlier magnitudes) of each task vector, sum.",
)
def breadcrumbs(context: MethodContext, scaling: float, bottom: float, top: float) -> Solution:
    """Tensor by tensor; a matrix too large to hold whole for every expert (an LLM's
    embedding) gets the same masks from exact order statistics over its row slices
    (``sliced_band_masks``), so memory stays bounded by a slice per expert."""
    pool = context.pool
    merged: dict[str, torch.Tensor] = {}

    def masked_sum(group: TensorGroup, masks: list[torch.Tensor]) -> torch.Tensor:
        total = torch.zeros_like(group.base)
        for vector, mask in zip(group.task_vectors, masks):
            total += vector * mask.view(vector.shape)
        return group.base + scaling * total

    def slices(name: str) -> Iterator[tuple[TensorGroup, list[torch.Tensor]]]:
        for group in pool.groups([name], context.seed, rowwise=True):
            with timed("read"):
                vectors = [vector.reshape(-1).float() for vector in group.task_vectors]
            yield group, vectors

    with torch.no_grad():
        for name in progress_bar(pool.mergeable_names(), desc="merge", enabled=context.progress):
            if not pool.is_huge(name):
                for group in pool.groups([name], context.seed):
                    with timed("merge"):
                        result = breadcrumbs_tensor(group, scaling, bottom, top)
                    pool.place(merged, group, result)
                continue
            count = 1
            for size in pool.shape(name):
                count *= size
            pieces = sliced_band_masks(lambda name=name: slices(name), count, bottom, top)
            for group, masks in pieces:
                with timed("merge"):
                    result = masked_sum(group, masks)
                pool.place(merged, group, result)
    return Solution(state=pool.output_state(merged))


breadcrumbs.tensor_merge = breadcrumbs_tensor  # type: ignore[attr-defined]
