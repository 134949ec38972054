"""Distillation losses, each the equation its paper states.

- Knowledge distillation (Hinton et al., 2015, https://arxiv.org/abs/1503.02531):
  ``T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))``, averaged over the batch; the T²
  keeps the gradient's scale comparable across temperatures.
- Feature (representation) distillation (FitNets, Romero et al., ICLR 2015,
  https://arxiv.org/abs/1412.6550): the mean squared error between the student's and
  the teacher's features.
- FuseLLM's knowledge fusion (Wan et al., ICLR 2024, https://arxiv.org/abs/2401.10491):
  of the teachers' next-token distribution matrices of a text, the one with the lowest
  cross-entropy to the gold tokens (MinCE) is the fused target Q; the loss is
  ``λ · L_LM + (1 − λ) · L_KD`` with λ = 0.9, L_KD the cross-entropy of the student
  under Q (see :mod:`harness.distillation.tokens` for how Q is built).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float):
    """T² · KL(p_teacher^T ‖ p_student^T), the batch mean of the per-example KL."""
    t = float(temperature)
    log_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    per_row = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1)
    return t * t * per_row.mean()


def feature_loss(student_features: torch.Tensor, teacher_features: torch.Tensor):
    """Mean squared error between features (every entry weighs the same)."""
    return F.mse_loss(student_features.float(), teacher_features.float())


def min_cross_entropy_choice(cross_entropy: torch.Tensor) -> torch.Tensor:
    """FuseLLM's MinCE fusion: the index of the teacher with the lowest cross-entropy to
    the gold tokens, per leading entry of ``cross_entropy`` [K, ...] (K teachers): per
    sequence when given each teacher's sequence CE [K, B] (the paper), per token when
    given token CE [K, B, L]. Ties go to the first teacher, as ``argmin`` picks."""
    return cross_entropy.argmin(dim=0)


def fusellm_loss(
    student_logits: torch.Tensor,
    gold: torch.Tensor,
    mask: torch.Tensor,
    target_indices: torch.Tensor,
    target_probs: torch.Tensor,
    lm_weight: float = 0.9,
) -> torch.Tensor:
    """``λ · L_LM + (1 − λ) · L_KD`` over the positions where ``mask`` is true.

    ``student_logits`` [B, L, V] predicts ``gold`` [B, L] (the next token at each
    position); L_LM is its cross-entropy to the gold token; L_KD is FuseLLM's
    cross-entropy of the student's log-probabilities under the fused teacher
    distribution Q, given sparsely as ``target_probs`` over ``target_indices`` [B, L, k]
    (the chosen teacher's top-k tokens: Q is zero elsewhere). Both are token means.
    """
    log_student = F.log_softmax(student_logits.float(), dim=-1)
    keep = mask.float()
    count = keep.sum().clamp(min=1.0)
    lm = -(log_student.gather(-1, gold.unsqueeze(-1)).squeeze(-1) * keep).sum() / count
    on_targets = log_student.gather(-1, target_indices)  # [B, L, k]
    kd = -((target_probs.float() * on_targets).sum(dim=-1) * keep).sum() / count
    return lm_weight * lm + (1.0 - lm_weight) * kd
