"""DARE + task arithmetic (Yu et al., ICML 2024, "Language Models are Super Mario:
Absorbing Abilities from Homologous Models as a Free Lunch").

    DARE ("Drop And REscale"), per task vector and per entry, with drop rate p:
        m_t ~ Bernoulli(p)                     (1 = drop)
        τ̃_t = (1 − m_t) ⊙ τ_t / (1 − p)        E[τ̃_t] = τ_t
    then task arithmetic on the sparsified vectors:
        θ = θ_0 + λ Σ_t τ̃_t

From the paper (our reading of its method section; in this session only the abstract or
other projects' configs could be re-checked, see Sources): the drop is element-wise and
random (not magnitude-based) and the rescaling factor is 1/(1 − p); the paper sweeps p ∈
{0.1, …, 0.9, 0.99} and shows that p = 0.9 keeps the experts' abilities for fine-tuned
models whose task vectors are small, so p = 0.9 is the default here; λ = 0.3 is task
arithmetic's default on CLIP suites (the paper selects the merging method's own
coefficient on validation data). Random draws use ``group.generator()`` (run seed +
tensor name): the same seed gives the same model.

Sources: the paper's abstract; FusionBench's DARE configs use other values (p = 0.5).
"""

from __future__ import annotations

import torch

from harness.merging import stack, tensorwise
from harness.pool import TensorGroup
from harness.registry import Param, register_method
from harness.sparsify import dare
from methods.task_arithmetic import SCALING

DROP = Param(
    0.9,
    help="p, the probability of dropping each task-vector entry (rescale by 1/(1−p))",
    low=0.0,
    high=0.99,
    grid=[0.5, 0.7, 0.9],
)


def dare_vectors(group: TensorGroup, drop: float) -> list[torch.Tensor]:
    """DARE applied to each task vector of one tensor, with the group's seeded generator."""
    generator = group.generator()
    return [dare(vector, drop, generator) for vector in group.task_vectors]


@register_method(
    "dare_ta",
    family="merging",
    reference="https://arxiv.org/abs/2311.03099",
    params={"scaling": SCALING, "drop": DROP},
    description="DARE (random drop, rescale by 1/(1−p)) then task arithmetic.",
)
@tensorwise
def dare_ta(group: TensorGroup, scaling: float, drop: float) -> torch.Tensor:
    return group.base + scaling * stack(dare_vectors(group, drop)).sum(dim=0)
