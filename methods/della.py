"""DELLA-Merging (Deep et al., 2024, "DELLA-Merging: Reducing Interference in Model
Merging through Magnitude-Based Sampling").

    1. Drop (MagPrune): rank the entries of each task vector by magnitude; entry i gets
       drop probability p_i spread evenly over [p − ε/2, p + ε/2], larger magnitude →
       smaller p_i; drop with probability p_i and rescale survivors by 1/(1 − p_i).
    2. Elect: γ = sgn(Σ_t τ̃_t)  (as TIES)
    3. Fuse:  disjoint mean of the τ̃_t that agree with γ
    θ = θ_0 + λ τ_m

From the paper: MagPrune ranks the delta parameters by magnitude and gives lower
magnitudes higher drop probabilities, survivors are rescaled by 1/(1 − p_i), then Elect
and Fuse follow TIES with a constant λ; the paper finds row-wise ranking best, which is
what is done for 2-D weights here (other tensors are ranked as a whole). Defaults p =
0.7, ε = 0.1, λ = 1.0 are our reading of the paper's tuned LM setting (not re-checked
here); the grid spans drop 0.5–0.9 and λ 0.3–1.0.

Sources: the abstract (ranking, magnitude-dependent drop, 1/(1 − p) rescale) and a
summary noting row-wise ranking and a constant λ; the defaults are still to verify.
"""

from __future__ import annotations

import torch

from harness.merging import stack, tensorwise
from harness.pool import TensorGroup
from harness.registry import Param, register_method
from harness.sparsify import magprune
from methods.ties import elect_and_disjoint_mean

DROP = Param(0.7, help="p, the mean drop probability", low=0.0, high=0.95, grid=[0.5, 0.7, 0.9])
EPSILON = Param(
    0.1,
    help="ε, the spread of drop probabilities by magnitude rank",
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
@tensorwise
def della(group: TensorGroup, scaling: float, drop: float, epsilon: float) -> torch.Tensor:
    generator = group.generator()
    pruned = [magprune(vector, drop, epsilon, generator) for vector in group.task_vectors]
    return group.base + scaling * elect_and_disjoint_mean(stack(pruned))
