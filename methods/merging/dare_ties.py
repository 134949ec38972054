"""DARE + TIES-Merging (Yu et al., ICML 2024, "Language Models are Super Mario:
Absorbing Abilities from Homologous Models as a Free Lunch").

    τ̃_t = DARE_p(τ_t)                         random drop with rate p, rescale 1/(1 − p)
    τ̂_t = trim_k(τ̃_t)                         TIES: keep the top-k fraction by magnitude
                                               over the whole model
    γ   = sgn(Σ_t τ̂_t)                         TIES sign election
    τ_m = disjoint mean of the τ̂_t agreeing with γ
    θ   = θ_0 + λ τ_m

The paper uses DARE as a plug-in in front of an existing merge: DARE sparsifies each
task vector, then TIES-Merging runs unchanged (``methods.merging.ties``), trim included; this is
the authors' ``mask_merging`` with ``mask_apply_method=ties_merging`` (yule-BUAA/MergeLM,
``merge_plms_glue.py``), which reuses the TIES hyperparameters tuned without DARE and
searches only p. The exact whole-model threshold is computed over the DARE'd vectors in
two streaming passes (the same seeded draws as the merge). With p = 0.5 and k = 0.2 the
trim keeps the top 20% of the ~50% DARE survivors; it only bites when k < 1 − p.
Defaults: p = 0.5 (see ``dare_ta``: FusionBench's CLIP value; its
``config/method/dare/ties_merging.yaml`` also uses sparsity_ratio 0.5), k = 0.2 and λ =
1.0: TIES' own defaults with its disjoint mean (see ``methods.merging.ties``), which is
also the DARE authors' ``ties_merging`` default (MergeLM ``scaling_coefficient`` 1.0,
disjoint mean; their GLUE search is λ ∈ {0.1, 0.3, 0.5, 0.7, 0.9, 1.0}). FusionBench's
DARE-TIES config uses ``scaling_factor: 0.5`` with ``merge_func: sum`` (a sum of the
agreeing entries, not their mean), so its 0.5 is a larger update than 0.5 here.
"""

from __future__ import annotations

import torch

from harness.merging.chunks import Scratch
from harness.merging.stream import merge_stream
from harness.merging.task_vectors import magnitude_thresholds
from harness.method import MethodContext, Solution
from harness.registry import register_method
from harness.weights.pool import TensorGroup
from methods.merging.dare_ta import DROP, dare_vectors
from methods.merging.ties import DENSITY, SCALING, trimmed_disjoint_merge


@register_method(
    "dare_ties",
    family="merging",
    reference="https://arxiv.org/abs/2311.03099",
    params={"scaling": SCALING, "drop": DROP, "density": DENSITY},
    description="DARE (random drop and rescale) then TIES: trim, elect signs, disjoint mean.",
)
def dare_ties(context: MethodContext, scaling: float, drop: float, density: float) -> Solution:
    def dropped(group: TensorGroup) -> list[torch.Tensor]:
        return dare_vectors(group, drop)

    with context.pool.resident():  # three passes: read the files once when they fit
        thresholds = magnitude_thresholds(  # the same pieces as the merge: the same drops
            context.pool,
            density,
            progress=context.progress,
            vectors=dropped,
            seed=context.seed,
            rowwise=True,
        )

        limits = [thresholds[task] for task in context.pool.tasks]
        scratch = Scratch()

        def merge(group: TensorGroup) -> torch.Tensor:  # TIES' merge of the dropped vectors
            return trimmed_disjoint_merge(group, limits, scaling, scratch, dropped(group))

        merged = merge_stream(context, merge, rowwise=True)
    return Solution(state=merged, info={"thresholds": thresholds})
