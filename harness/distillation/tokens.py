"""Causal-LM teachers for token-level distillation (FuseLLM): each teacher's top-k
next-token distributions on the planned train sequences, and their fusion.

A causal-LM suite's batches (``provides`` "lm") are right-padded fine-tuning sequences
``prompt + answer`` whose label is the prompt length; the loss positions are those whose
next token is an answer token (as the experts were fine-tuned). Per teacher and planned
batch this keeps, once:

- the top-k logits and their token ids at every position (FuseLLM keeps the top 10 of
  each source's distribution: the fused target is a k-sparse distribution, the softmax
  of the chosen teacher's top-k logits; k = the vocabulary keeps it whole);
- the cross-entropy of the full distribution to the gold next token, per position and
  its mean per sequence over the loss positions (FuseLLM's ``metric_ce``).

:func:`fuse` then picks, per sequence (the paper: one distribution matrix per text) or
per token, the teacher with the lowest cross-entropy (MinCE). Only one teacher is in
memory at a time; what is kept is k values per position per teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.distillation.budget import TaskData
from harness.distillation.losses import min_cross_entropy_choice
from harness.errors import HarnessError
from harness.method import MethodContext
from harness.progress import progress_bar

FUSIONS = ("sequence", "token")


@dataclass
class TokenTargets:
    """What a causal-LM student is trained on for one batch: the gold next token and the
    loss mask per position, and the fused teacher distribution (k-sparse)."""

    gold: torch.Tensor  # [B, L] next token at each position
    mask: torch.Tensor  # [B, L] positions whose next token is an answer token
    indices: torch.Tensor  # [B, L, k] token ids of the fused distribution
    probs: torch.Tensor  # [B, L, k] their probabilities (rows sum to 1)
    choice: torch.Tensor  # [B] or [B, L]: which teacher each sequence / token follows


@dataclass
class TeacherTokens:
    """One teacher's outputs on one batch."""

    logits: torch.Tensor  # [B, L, k] top-k logits
    indices: torch.Tensor  # [B, L, k]
    token_ce: torch.Tensor  # [B, L] CE of the gold next token (0 off the mask)
    sequence_ce: torch.Tensor  # [B] mean token CE over the sequence's loss positions


def next_token_targets(
    inputs: torch.Tensor, prompt_lengths: torch.Tensor, real: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gold, mask)``: the next token at each position, and whether that next token is
    an answer token (position p predicts token p + 1; the answer starts at the prompt
    length and ends at the last real token)."""
    gold = torch.cat([inputs[:, 1:], inputs[:, -1:]], dim=1)
    lengths = (
        real.sum(dim=1) if real is not None else torch.full_like(prompt_lengths, inputs.shape[1])
    )
    positions = torch.arange(inputs.shape[1]).unsqueeze(0)
    start = prompt_lengths.to(torch.long).unsqueeze(1) - 1
    mask = (positions >= start) & (positions < lengths.unsqueeze(1) - 1)
    return gold, mask


def teacher_tokens(
    logits: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor, top_k: int
) -> TeacherTokens:
    """A teacher's top-k logits and its cross-entropy to the gold tokens (full vocabulary)."""
    logits = logits.float()
    token_ce = -F.log_softmax(logits, dim=-1).gather(-1, gold.unsqueeze(-1)).squeeze(-1)
    token_ce = token_ce * mask
    sequence_ce = token_ce.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    values, indices = logits.topk(min(top_k, logits.shape[-1]), dim=-1)
    return TeacherTokens(values, indices, token_ce, sequence_ce)


def fuse(
    teachers: Sequence[TeacherTokens], gold: torch.Tensor, mask: torch.Tensor, fusion: str
) -> TokenTargets:
    """MinCE over the teachers, per sequence or per token; the chosen teacher's top-k
    logits become the target distribution (softmax over its k tokens)."""
    if fusion not in FUSIONS:
        raise HarnessError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if fusion == "sequence":
        choice = min_cross_entropy_choice(torch.stack([t.sequence_ce for t in teachers]))
        per_token = choice.unsqueeze(1).expand_as(gold)
    else:
        choice = min_cross_entropy_choice(torch.stack([t.token_ce for t in teachers]))
        per_token = choice
    pick = per_token.unsqueeze(0).unsqueeze(-1)
    pick = pick.expand(1, *teachers[0].logits.shape)
    logits = torch.stack([t.logits for t in teachers]).gather(0, pick).squeeze(0)
    indices = torch.stack([t.indices for t in teachers]).gather(0, pick).squeeze(0)
    return TokenTargets(gold, mask, indices, F.softmax(logits, dim=-1), choice)


def lm_logits(model: torch.nn.Module):
    """The causal LM as a function of right-padded token ids → logits. No attention mask
    is needed: padding only follows a sequence's tokens, which causal attention never
    lets an earlier position see."""

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return model(input_ids=inputs).logits

    return run


def token_targets(
    context: MethodContext,
    teachers: dict[str, list[str]],
    data: dict[str, TaskData],
    top_k: int,
    fusion: str,
) -> tuple[dict[tuple[str, int], TokenTargets], int]:
    """Run every planned batch through its teachers once (one expert loaded at a time) and
    fuse their distributions; returns the targets per (task, batch) and the number of
    sequences run through a teacher."""
    if top_k < 1:
        raise HarnessError(f"top_k must be at least 1, got {top_k}")
    kept: dict[tuple[str, int], list[TeacherTokens]] = {}
    gold_mask: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for task in context.tasks:
        for index in data[task].used:
            inputs, prompts = data[task].batches[index]
            gold_mask[(task, index)] = next_token_targets(
                inputs, prompts, context.token_mask(inputs)
            )
    forward = 0
    experts = list(context.pool.tasks)
    for expert in progress_bar(experts, desc="teachers", enabled=context.progress):
        taught = [task for task in context.tasks if expert in teachers[task]]
        if not taught:
            continue
        model = context.build_model(context.pool.expert_state(expert)).requires_grad_(False)
        run = lm_logits(model)
        with torch.no_grad():
            for task in taught:
                for index in data[task].used:  # one call a batch: lengths differ
                    inputs = data[task].batches[index][0]
                    gold, mask = gold_mask[(task, index)]
                    logits = run(inputs.to(context.device)).cpu()
                    teacher = teacher_tokens(logits, gold, mask, top_k)
                    kept.setdefault((task, index), []).append(teacher)
                    forward += len(inputs)
        del model
    targets = {key: fuse(outs, *gold_mask[key], fusion) for key, outs in kept.items()}
    return targets, forward


def choice_shares(
    targets: dict[tuple[str, int], TokenTargets], teachers: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """Per task, the share of its fused targets (sequences or tokens) each teacher gave."""
    counts: dict[str, torch.Tensor] = {}
    for (task, _), target in targets.items():
        choice = target.choice if target.choice.dim() == 1 else target.choice[target.mask]
        found = torch.bincount(choice.flatten(), minlength=len(teachers[task]))
        counts[task] = counts[task] + found if task in counts else found
    return {
        task: {
            expert: round(float(n) / max(1, int(total.sum())), 4)
            for expert, n in zip(teachers[task], total.tolist())
        }
        for task, total in counts.items()
    }
