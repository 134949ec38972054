"""Consensus merging (Wang et al., ICML 2024, "Localizing Task Information for Improved
Model Merging and Compression").

TALL masks (see ``tall_masks``) say which tasks use each weight. Weights used by fewer
than k tasks are "selfish" (one task only) or "catastrophic" (none) and are removed from
the merged vector:

    m_t   = 1{ |τ_t| ≥ λ · |τ_MTL − τ_t| },    τ_MTL = Σ_t τ_t
    m_cons = 1{ Σ_t m_t ≥ k }
    θ     = θ_0 + α · m_cons ⊙ τ_MTL            (Consensus task arithmetic)

From the paper (our reading of its method section; in this session only the abstract or
other projects' configs could be re-checked, see Sources): k = 2 is the paper's choice
(keep weights relevant to at least two tasks), the TALL masks use the same λ as
TALL-mask compression (default 0.4, the middle of the paper's [0.2, 0.6]); α is task
arithmetic's coefficient (default 0.3, the CLIP value, with its grid). One model, no
per-task storage.

Sources: the abstract (weights selected by more than one mask are kept).
"""

from __future__ import annotations

import torch

from harness.merging import stack, tensorwise
from harness.pool import TensorGroup
from harness.registry import Param, register_method
from methods.tall_masks import LAMBDA, tall_masks
from methods.task_arithmetic import SCALING

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
@tensorwise
def consensus(group: TensorGroup, scaling: float, k: int, tall_lambda: float) -> torch.Tensor:
    vectors = stack(group.task_vectors)
    agreement = tall_masks(vectors, tall_lambda).sum(dim=0)
    return group.base + scaling * (agreement >= k) * vectors.sum(dim=0)
