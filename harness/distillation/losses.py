"""Distillation losses, each the equation its paper states.

- Knowledge distillation (Hinton et al., 2015, https://arxiv.org/abs/1503.02531):
  ``T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))``, averaged over the batch; the T²
  keeps the gradient's scale comparable across temperatures.
- Feature (representation) distillation (FitNets, Romero et al., ICLR 2015,
  https://arxiv.org/abs/1412.6550): the mean squared error between the student's and
  the teacher's features.
- FuseLLM's token-level fusion (Wan et al., ICLR 2024, https://arxiv.org/abs/2401.10491):
  per token, of the teachers' next-token distributions, the one with the lowest
  cross-entropy to the gold token is the fused target; the loss is
  ``0.9 · L_LM + 0.1 · L_KD`` (λ = 0.9 on the causal LM loss).
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


def fuse_token_distributions(teacher_logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """FuseLLM's MinCE fusion: per token, the teacher logits whose cross-entropy to the
    gold token is lowest.

    ``teacher_logits`` is [K, B, L, V] (K teachers), ``gold`` is [B, L]; returns [B, L, V].
    Ties go to the first teacher, as ``argmin`` picks.
    """
    log_probs = F.log_softmax(teacher_logits.float(), dim=-1)
    index = gold.unsqueeze(0).unsqueeze(-1).expand(log_probs.shape[0], -1, -1, 1)
    cross_entropy = -log_probs.gather(-1, index).squeeze(-1)  # [K, B, L]
    best = cross_entropy.argmin(dim=0)  # [B, L]
    pick = best.unsqueeze(0).unsqueeze(-1).expand(1, -1, -1, teacher_logits.shape[-1])
    return teacher_logits.gather(0, pick).squeeze(0)


def fusellm_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    gold: torch.Tensor,
    mask: torch.Tensor,
    lm_weight: float = 0.9,
) -> torch.Tensor:
    """``λ · CE(student, gold) + (1 − λ) · CE(fused teacher distribution, student)`` over
    the positions where ``mask`` is true; FuseLLM's KD term is the cross-entropy of the
    student's log-probabilities under the fused distribution."""
    fused = F.softmax(fuse_token_distributions(teacher_logits, gold), dim=-1)
    log_student = F.log_softmax(student_logits.float(), dim=-1)
    keep = mask.float()
    count = keep.sum().clamp(min=1.0)
    lm = -(log_student.gather(-1, gold.unsqueeze(-1)).squeeze(-1) * keep).sum() / count
    kd = -((fused * log_student).sum(dim=-1) * keep).sum() / count
    return lm_weight * lm + (1.0 - lm_weight) * kd
