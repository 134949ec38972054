"""Dynamic logit fusion (Fan et al., NeurIPS 2024, "On Giant's Shoulders: Effortless Weak
to Strong by Dynamic Logits Fusion", https://arxiv.org/abs/2406.15480): an inference-time
reference that adds task experts' logit offsets to a model's logits, with weights chosen
afresh at every decoding step.

With M^L the large model's logits, M^S the small base's, M^S_t expert t's (a fine-tune of
the small base) and P, Q, Q_t their softmaxes, each step's distribution is

    P̃(α) = softmax( M^L + Σ_t α_t (M^S_t − M^S) )

with α the minimiser, over the paper's search, of (its Eq. 5 / Algorithm 1)

    Σ_t [ (KL(P̃ ‖ P) − KL(Q_t ‖ Q))² + (KL(P ‖ P̃) − KL(Q ‖ Q_t))² ]

so that the large model moves from its own distribution as far as the experts move from
theirs (the centroid of the experts' KL "distances"). The search is the paper's
multi-task one: one expert's α at a time (the others 0), α ∈ {0, 0.1, …, 2.0}: T × 21
candidates per step. Every position of a sequence is a decoding step of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: α ∈ [0, 2] in steps of 0.1, the paper's search (Algorithm 1)
GRID = tuple(round(0.1 * step, 1) for step in range(21))


def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) over the last axis, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def fusion_weights(
    large: torch.Tensor,
    small: torch.Tensor,
    experts: torch.Tensor,
    grid: Sequence[float] = GRID,
) -> torch.Tensor:
    """α [..., T] for logits ``large`` and ``small`` [..., V] and ``experts`` [T, ..., V]:
    the candidate (one expert's α from ``grid``, the others 0) with the lowest loss.
    Ties go to the first expert, then the smallest α."""
    large, small, experts = large.float(), small.float(), experts.float()
    log_p = F.log_softmax(large, dim=-1)
    log_q = F.log_softmax(small, dim=-1)
    log_qt = F.log_softmax(experts, dim=-1)
    forward_target = kl(log_qt, log_q)  # KL(Q_t ‖ Q): [T, ...]
    reverse_target = kl(log_q, log_qt)  # KL(Q ‖ Q_t)
    values = torch.tensor(list(grid), dtype=large.dtype, device=large.device)
    shape = (len(values),) + (1,) * experts.dim()
    candidates = large + values.view(shape) * (experts - small)  # [G, T, ..., V]
    log_fused = F.log_softmax(candidates, dim=-1)
    forward = kl(log_fused, log_p)  # KL(P̃ ‖ P): [G, T, ...]
    reverse = kl(log_p, log_fused)  # KL(P ‖ P̃)
    loss = (
        (forward.unsqueeze(2) - forward_target).pow(2)
        + (reverse.unsqueeze(2) - reverse_target).pow(2)
    ).sum(dim=2)  # Σ over the experts t': [G, T, ...]
    count = experts.shape[0]
    flat = loss.transpose(0, 1).reshape(count * len(values), *loss.shape[2:])  # t-major
    best = flat.argmin(dim=0)
    expert, step = best // len(values), best % len(values)
    alpha = torch.zeros(*best.shape, count, dtype=large.dtype, device=large.device)
    alpha.scatter_(-1, expert.unsqueeze(-1), values[step].unsqueeze(-1))
    return alpha


def fuse_logits(
    large: torch.Tensor, small: torch.Tensor, experts: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """M^L + Σ_t α_t (M^S_t − M^S), with α [..., T]."""
    offsets = experts.float() - small.float()  # [T, ..., V]
    return large.float() + (alpha.movedim(-1, 0).unsqueeze(-1) * offsets).sum(dim=0)


class LogitFusionLM(nn.Module):
    """A causal LM whose next-token logits are the dynamic fusion of a large model, a small
    base and its experts: ``forward`` (every position) and greedy ``generate`` as lm-eval's
    HF backend calls them. Each token costs one forward pass of every model (T + 2, or
    T + 1 when the large model is the small base itself); no KV cache is kept."""

    def __init__(
        self,
        large: nn.Module,
        small: nn.Module,
        experts: Sequence[nn.Module],
        grid: Sequence[float] = GRID,
    ) -> None:
        super().__init__()
        self.large = large
        self.small = small
        self.experts = nn.ModuleList(experts)
        self.grid = tuple(grid)
        self.config = large.config
        self.generation_config = getattr(large, "generation_config", None)
        self.alphas: list[torch.Tensor] = []  # α of each generated token (for the record)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tie_weights(self) -> None:
        """lm-eval ties a model's weights after loading; each member model is already tied."""

    @property
    def forward_passes_per_token(self) -> int:
        return len(self.experts) + (1 if self.small is self.large else 2)

    def _logits(self, input_ids, attention_mask, last_only: bool):
        position_ids = None
        if attention_mask is not None:
            position_ids = (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
        keep = slice(-1, None) if last_only else slice(None)

        def run(model: nn.Module) -> torch.Tensor:
            out = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            )
            return out.logits[:, keep]

        large = run(self.large)
        small = large if self.small is self.large else run(self.small)
        experts = torch.stack([run(expert) for expert in self.experts])
        alpha = fusion_weights(large, small, experts, self.grid)
        return fuse_logits(large, small, experts, alpha), alpha

    def forward(self, input_ids: torch.Tensor, attention_mask=None, **_: object):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        with torch.no_grad():
            logits, _alpha = self._logits(input_ids, attention_mask, last_only=False)
        return CausalLMOutputWithPast(logits=logits)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_length: int | None = None,
        max_new_tokens: int | None = None,
        stopping_criteria=None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        **_: object,
    ) -> torch.Tensor:
        """Greedy decoding of left-padded prompts (lm-eval's generate_until): the prompt
        followed by the generated tokens, ``pad_token_id`` after a sequence ends."""
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = eos if pad_token_id is None else pad_token_id
        if max_length is None:
            max_length = input_ids.shape[1] + (max_new_tokens or 20)
        ids = input_ids
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask
        done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
        while ids.shape[1] < max_length and not bool(done.all()):
            logits, alpha = self._logits(ids, mask, last_only=True)
            self.alphas.append(alpha[:, -1].cpu())
            token = logits[:, -1].argmax(dim=-1)
            token = torch.where(done, torch.full_like(token, pad), token)
            ids = torch.cat([ids, token[:, None]], dim=1)
            mask = torch.cat([mask, (~done).long()[:, None].to(mask.dtype)], dim=1)
            done = done | (token == eos)
            if stopping_criteria is not None:
                stop = stopping_criteria(ids, None)
                done = done | torch.as_tensor(stop, device=ids.device).bool()
        return ids
