"""DELLA-Merging (Deep et al., 2024, "DELLA-Merging: Reducing Interference in Model
Merging through Magnitude-Based Sampling").

    1. Drop (MagPrune): rank the entries of each task vector by magnitude; entry i gets
       drop probability p_i spread evenly over [p − ε/2, p + ε/2], larger magnitude →
       smaller p_i; drop with probability p_i and rescale survivors by 1/(1 − p_i).
    2. Elect: γ = sgn(Σ_t τ̃_t)  (as TIES)
    3. Fuse:  disjoint mean of the τ̃_t that agree with γ
    θ = θ_0 + λ τ_m

Checked against the authors' code (declare-lab/della: ``merge.py``,
``mergekit/mergekit/sparsify.py`` ``rank_magnitude``, ``merge_methods/__init__.py``,
``merge_methods/generalized_task_arithmetic.py``): method ``della`` =
``rank_magnitude_sampling`` (ranks within each row, ascending |τ|; a 1-D tensor is one
row) + sign election by sum (TIES) + disjoint mean (``default_normalize``), then λ.
``rank_magnitude(tensor, density, epsilon=h)`` keeps rank r with probability
k − h + 2h·r/(n−1) (k = 1 − p) and divides survivors by it, i.e. by 1/(1 − p_i): the
same rule as here with ε = 2h. Their ``window_size`` w is the *full* width of the
window: ``generalized_task_arithmetic.py`` passes ``epsilon = window_size / 2`` as h,
so the keep probabilities span [k − w/2, k + w/2] and **ε here = w** (the same
number; no conversion). Their README example for merging LM + Math + Code uses drop
0.3, λ = 1.1, window 0.14 (ε = 0.14 here); ``merge.py`` defaults λ = 1 and window 0
(window 0 is DARE + TIES). The paper has no CLIP experiments and its per-setting tuned
table could not be read in this session, so the defaults remain choices: p = 0.7,
ε = 0.1 (= window 0.1, i.e. h = 0.05, the default ``epsilon`` of their
``rank_magnitude``), λ = 1.0 (their default; τ_m is a disjoint mean). The grid spans
drop 0.3–0.9 (0.3 is their example) and λ 0.3–1.0.
"""

from __future__ import annotations

import torch

from harness.merging.chunks import Scratch
from harness.merging.sparsify import magprune
from harness.merging.stream import tensorwise
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.ties import trimmed_disjoint_merge

DROP = Param(
    0.7, help="p, the mean drop probability", low=0.0, high=0.95, grid=[0.3, 0.5, 0.7, 0.9]
)
EPSILON = Param(
    0.1,
    help="ε, the full width of the drop probabilities by rank (the authors' window_size)",
    low=0.0,
    high=0.5,
    grid=[0.1],
)
SCALING = Param(
    1.0,
    help="λ, the scaling of the fused task vector",
    low=0.0,
    high=2.0,
    grid=[0.3, 0.5, 0.7, 1.0],
)


@register_method(
    "della",
    family="merging",
    reference="https://arxiv.org/abs/2406.11617",
    params={"scaling": SCALING, "drop": DROP, "epsilon": EPSILON},
    description="Magnitude-based random drop (MagPrune), TIES sign election, disjoint mean.",
)
@tensorwise(rowwise=True)
def della(group: TensorGroup, scaling: float, drop: float, epsilon: float) -> torch.Tensor:
    generator = group.generator()
    pruned = [magprune(vector, drop, epsilon, generator) for vector in group.task_vectors]
    # TIES' sign election and disjoint mean with nothing trimmed (fused on a CPU)
    return trimmed_disjoint_merge(group, [0.0] * len(pruned), scaling, Scratch(), pruned)
