"""DARE + task arithmetic (Yu et al., ICML 2024, "Language Models are Super Mario:
Absorbing Abilities from Homologous Models as a Free Lunch").

    DARE ("Drop And REscale"), per task vector and per entry, with drop rate p:
        m_t ~ Bernoulli(p)                     (1 = drop)
        τ̃_t = (1 − m_t) ⊙ τ_t / (1 − p)        E[τ̃_t] = τ_t
    then task arithmetic on the sparsified vectors:
        θ = θ_0 + λ Σ_t τ̃_t

Checked against the paper's method and the authors' code (yule-BUAA/MergeLM,
``model_merging_methods/mask_weights_utils.py``, ``mask_input_with_mask_rate``): the
drop is element-wise and random, ``mask = bernoulli(full_like(τ, p))``, ``τ · (1 − mask) /
(1 − p)``, applied to each task vector (delta weights) before the merge. The paper has no
CLIP experiments; its merging runs (``merge_plms_glue.py``, ``mask_merging``) keep the
underlying method's tuned coefficient and search p ∈ {0.1, 0.3, 0.5, 0.7, 0.9}. On CLIP
ViT 8-task suites the value in use is FusionBench's (``config/method/dare/
task_arithmetic.yaml``: sparsity_ratio 0.5, scaling_factor 0.3, rescale true), so the
default here is p = 0.5 with λ = 0.3 (task arithmetic's CLIP value); the grid is the
upper part of the authors' sweep. p = 0.9 is the paper's single-model showcase
(WizardMath at 90% drop), not a merging default. Random draws use ``group.generator()``
(run seed + tensor name): the same seed gives the same model.
"""

from __future__ import annotations

import torch

from harness.merging import kernels, sparsify
from harness.merging.sparsify import dare
from harness.merging.stream import stack, tensorwise
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup
from methods.merging.task_arithmetic import SCALING

DROP = Param(
    0.5,
    help="p, the probability of dropping each task-vector entry (rescale by 1/(1−p))",
    low=0.0,
    high=0.99,
    grid=[0.3, 0.5, 0.7, 0.9],
)


def dare_vectors(group: TensorGroup, drop: float) -> list[torch.Tensor]:
    """DARE applied to each task vector of one tensor, with the group's seeded generator
    (on a CPU each in one fused sweep: the same draws, the same numbers)."""
    generator = group.generator()
    if drop == 0 or not kernels.use_kernels(group.base):
        return [dare(vector, drop, generator) for vector in group.task_vectors]
    sparsify.check_drop(drop)
    base, experts = kernels.as_arrays(group.base, group.experts)
    dropped = []
    for expert in experts:
        draws = sparsify.uniform(group.base, generator)
        output = torch.empty(group.base.shape, dtype=torch.float32)
        kernels.dare_vector(base, expert, draws.view(-1).numpy(), drop, output.view(-1).numpy())
        dropped.append(output)
    return dropped


def dare_draws(group: TensorGroup) -> list[torch.Tensor]:
    """The draws ``dare_vectors`` takes, task by task, from the group's generator."""
    generator = group.generator()
    return [sparsify.uniform(group.base, generator) for _ in group.experts]


@register_method(
    "dare_ta",
    family="merging",
    reference="https://arxiv.org/abs/2311.03099",
    params={"scaling": SCALING, "drop": DROP},
    description="DARE (random drop, rescale by 1/(1−p)) then task arithmetic.",
)
@tensorwise(rowwise=True)
def dare_ta(group: TensorGroup, scaling: float, drop: float) -> torch.Tensor:
    sparsify.check_drop(drop)
    if drop > 0 and kernels.use_kernels(group.base):  # one fused sweep on a CPU
        arrays = tuple(draw.view(-1).numpy() for draw in dare_draws(group))
        merge = kernels.dare_sum_merge
        return kernels.fused(merge, group.base, group.experts, arrays, drop, scaling)
    return group.base + scaling * stack(dare_vectors(group, drop)).sum(dim=0)
