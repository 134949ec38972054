"""TIES-Merging (Yadav et al., NeurIPS 2023, "Resolving interference when merging models").

    1. Trim:  keep the top-k% entries of each task vector by magnitude (k = 20), over
              the whole model; zero the rest → τ̂_t
    2. Elect: γ = sgn(Σ_t τ̂_t), the sign with the larger total mass per parameter
    3. Merge: τ_m = disjoint mean: average of the τ̂_t whose sign agrees with γ (and
              that are non-zero) per parameter
              θ = θ_0 + λ τ_m

Defaults: k = 20 and λ = 1, the paper's recipe when no validation set is available
(§5 and App. C.4: chosen on the (IA)³ setting and applied unchanged elsewhere, including
the eight-task CLIP ViT-B/32 and ViT-L/14 results; App. B.2 notes that because τ_m is a
mean, λ = 1 for TIES plays the role of λ = 1/T for task arithmetic). With a validation
set the authors search λ from 0.8 to 2.5 in steps of 0.1 (prateeky2806/ties-merging
README, ``linear+0.8+2.51+0.1`` with ``dis-mean``). The paper itself could not be opened
in this session; these values were checked against a summary that quotes §5, App. B.2
and C.4, and against the authors' code (and the DARE authors' re-implementation,
yule-BUAA/MergeLM ``ties_merging``: disjoint mean, default ``scaling_coefficient`` 1.0).
The grid keeps the small values that win on small towers (mini8 picks 0.2) and reaches
into the paper's range.

Not FusionBench's λ = 0.3: FusionBench's CLIP setting (``config/method/ties_merging.yaml``)
pairs ``scaling_factor: 0.3`` with ``merge_func: sum``, i.e. θ_0 + 0.3 Σ_{t agreeing}
τ̂_t, not the disjoint mean of the paper used here. At the same λ the sum gives larger
updates by the number of agreeing non-zero entries per parameter (2.2× on the parity
check's CLIP data); the ratio varies per parameter, so no λ here reproduces
FusionBench's TIES weights exactly.
"""

from __future__ import annotations

import torch

from harness.merging import kernels
from harness.merging.chunks import Scratch, spans
from harness.merging.stream import merge_stream
from harness.merging.task_vectors import magnitude_thresholds
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

SCALING = Param(
    1.0,
    help="λ, the scaling of the disjoint-mean task vector",
    low=0.0,
    high=3.0,
    grid=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0],
)
DENSITY = Param(0.2, help="k, the kept fraction of each task vector", low=0.001, high=1.0)


def elect_and_disjoint_mean(trimmed: torch.Tensor) -> torch.Tensor:
    """Steps 2–3 on trimmed task vectors stacked along dim 0 (tasks first)."""
    elected_sign = torch.sign(trimmed.sum(dim=0))
    agrees = (torch.sign(trimmed) == elected_sign) & (trimmed != 0)
    kept_sum = (trimmed * agrees).sum(dim=0)
    count = agrees.sum(dim=0).clamp(min=1)
    return kept_sum / count


def trimmed_disjoint_merge(
    group: TensorGroup,
    thresholds: list[float],
    scaling: float,
    scratch: Scratch,
    vectors: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """θ_0 + λ · disjoint mean of the trimmed ``vectors`` (the task vectors by default) for
    one tensor: trim, elect and mean as ``keep_top_magnitudes`` and
    ``elect_and_disjoint_mean`` do, the same float32 operations in the same order, but in
    chunks through reused buffers (``harness.merging.chunks``) rather than whole-tensor
    temporaries: the same numbers, several times faster on a CPU."""
    if kernels.use_kernels(group.base):  # one fused sweep on a CPU
        merge = kernels.ties_merge
        if vectors is None:
            return kernels.fused(merge, group.base, group.experts, thresholds, scaling)
        # given vectors against a zero base (v − 0 = v), then the base added: the same sum
        zero = torch.zeros(group.base.shape)
        return group.base + kernels.fused(merge, zero, vectors, thresholds, scaling)
    base = group.base.reshape(-1)
    sources = [v.reshape(-1) for v in (vectors if vectors is not None else group.experts)]
    count = len(sources)
    device = base.device
    limits = torch.tensor(thresholds, dtype=base.dtype, device=device).view(count, 1)
    out = torch.empty_like(base)
    for start, stop in spans(base):
        size = stop - start
        trimmed = scratch.get("trimmed", (count, size), base.dtype, device)
        work = scratch.get("work", (count, size), base.dtype, device)
        flags = scratch.get("flags", (count, size), torch.bool, device)
        total = scratch.get("total", (size,), base.dtype, device)
        agreeing = scratch.get("agreeing", (size,), torch.int64, device)
        for index, source in enumerate(sources):
            if vectors is None:
                torch.sub(source[start:stop], base[start:stop], out=trimmed[index])
            else:
                trimmed[index].copy_(source[start:stop])
        torch.ge(torch.abs(trimmed, out=work), limits, out=flags)  # trim: keep |τ| ≥ k-th
        trimmed.mul_(flags)  # zero the trimmed entries (× 0 keeps their sign bit only)
        sign = torch.sign(torch.sum(trimmed, dim=0, out=total), out=total)  # elect
        # τ agrees with the sign and is non-zero ⇔ sign·τ > 0; the kept sum is
        # sign · Σ (sign·τ)⁺, the same float32 sum (negation is exact)
        torch.mul(trimmed, sign, out=work).clamp_(min=0.0)
        agreeing.copy_(torch.count_nonzero(work, dim=0)).clamp_(min=1)
        kept = torch.sum(work, dim=0, out=trimmed[0]).mul_(sign)
        torch.div(kept, agreeing, out=total).mul_(scaling)
        torch.add(base[start:stop], total, out=out[start:stop])
    return out.view(group.base.shape)


@register_method(
    "ties",
    family="merging",
    reference="https://arxiv.org/abs/2306.01708",
    params={"scaling": SCALING, "density": DENSITY},
    description="Trim to top-k% magnitudes, elect signs by mass, disjoint mean.",
)
def ties(context: MethodContext, scaling: float, density: float) -> Solution:
    with context.pool.resident():  # three passes: read the files once when they fit
        thresholds = magnitude_thresholds(context.pool, density, progress=context.progress)
        limits = [thresholds[task] for task in context.pool.tasks]
        scratch = Scratch()

        def merge(group: TensorGroup) -> torch.Tensor:
            return trimmed_disjoint_merge(group, limits, scaling, scratch)

        merged = merge_stream(context, merge, rowwise=True)
    return Solution(state=merged, info={"thresholds": thresholds})
