"""Consensus merging (Wang et al., ICML 2024, "Localizing Task Information for Improved
Model Merging and Compression").

TALL masks (see ``tall_masks``) say which tasks use each weight. Weights used by fewer
than k tasks are "selfish" (one task only) or "catastrophic" (none) and are removed from
the merged vector:

    m_t   = 1{ |τ_t| > λ · |τ_MTL − τ_t| },    τ_MTL = Σ_t τ_t
    m_cons = 1{ Σ_t m_t ≥ k }
    θ     = θ_0 + α · m_cons ⊙ τ_MTL            (Consensus task arithmetic)

Checked against the authors' code (nik-dim/tall_masks, ``config/method/consensus.yaml``:
prun_thre_k 2; ``src/utils/tallmask_utils.py`` ``construct_consensus_mask``: a weight
is kept where the number of tasks whose TALL mask holds is ≥ k; ``src/eval/
aggregation.py``: the kept τ_MTL is the plain sum, k = 100 so no top-k filtering, and
its coefficient is picked on validation data like task arithmetic's). The TALL masks
are the per-task-λ masks stored by their TALL-mask run; here one λ is used for all
tasks, the same default as ``tall_masks`` (0.4, the middle of their {0.2, …, 0.6}). α
is task arithmetic's coefficient (default 0.3, the CLIP value, with its grid). One
model, no per-task storage.
"""

from __future__ import annotations

import torch

from harness.merging import kernels
from harness.merging.stream import stack, tensorwise
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.tall_masks import LAMBDA, tall_masks
from methods.merging.task_arithmetic import SCALING

K = Param(
    2,
    help="k, the number of tasks that must use a weight to keep it",
    low=1,
    high=1000,
    grid=[1, 2, 3],
)


@register_method(
    "consensus",
    family="merging",
    reference="https://arxiv.org/abs/2405.07813",
    params={"scaling": SCALING, "k": K, "tall_lambda": LAMBDA},
    description="Task arithmetic keeping only weights that TALL masks of ≥ k tasks use.",
)
@tensorwise(rowwise=True)
def consensus(group: TensorGroup, scaling: float, k: int, tall_lambda: float) -> torch.Tensor:
    if kernels.use_kernels(group.base):  # one fused sweep on a CPU: the same numbers
        merge = kernels.tall_mask_merge
        return kernels.fused(merge, group.base, group.experts, tall_lambda, scaling, k=k)
    vectors = stack(group.task_vectors)
    agreement = tall_masks(vectors, tall_lambda).sum(dim=0)
    return group.base + scaling * (agreement >= k) * vectors.sum(dim=0)
