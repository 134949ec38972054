"""Scoring by generation: greedy decoding, then exact match or the Spearman ρ of numbers.

This is how text-to-text suites are scored (FusionBench's Flan-T5 GLUE: ``generate``
with ``max_length=10``, decode without special tokens, compare strings). Text batches are
one int64 tensor of token ids, so a model here is anything whose one-tensor forward gives
the logits of the next target token:

- a :class:`PrefixedDecoder` (the suite's own model) returns the logits after its
  ``decoder_prefix`` (the start token when unset) and decodes greedily itself (e.g.
  running its encoder once per batch);
- any other module built from such models (an output ensemble, a router that mixes
  experts per input) is decoded step by step: :func:`decoding` sets the same prefix on
  every :class:`PrefixedDecoder` inside it, and the next token is the argmax of its output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from harness.progress import progress_bar


class PrefixedDecoder:
    """Mixin for encoder-decoder modules whose ``forward(input_ids)`` returns ``[B, V]``
    logits of the next target token after ``decoder_prefix`` ([B, L] ids; None: the
    decoder start token alone)."""

    decoder_prefix: torch.Tensor | None = None

    def greedy(self, input_ids: torch.Tensor, max_length: int) -> torch.Tensor:
        """Greedy target ids, ``[B, ≤ max_length]``, starting with the start token."""
        assert isinstance(self, nn.Module)
        return stepwise_greedy(self, input_ids, **self.special_ids(), max_length=max_length)

    def special_ids(self) -> dict[str, int]:
        """``start_id``, ``eos_id`` and ``pad_id`` of the target vocabulary."""
        raise NotImplementedError


@contextmanager
def decoding(model: nn.Module, prefix: torch.Tensor) -> Iterator[None]:
    """Within the block, every :class:`PrefixedDecoder` in ``model`` continues ``prefix``."""
    decoders = [module for module in model.modules() if isinstance(module, PrefixedDecoder)]
    saved = [decoder.decoder_prefix for decoder in decoders]
    for decoder in decoders:
        decoder.decoder_prefix = prefix
    try:
        yield
    finally:
        for decoder, value in zip(decoders, saved):
            decoder.decoder_prefix = value


@torch.no_grad()
def greedy_loop(
    next_logits: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    device: torch.device,
    *,
    start_id: int,
    eos_id: int,
    pad_id: int,
    max_length: int,
) -> torch.Tensor:
    """Greedy decoding: ``next_logits(prefix)`` → [B, V]; the argmax is appended, finished
    rows get the pad id, and decoding stops when every row has ended or the prefix holds
    ``max_length`` tokens (the start token included, as transformers counts
    ``max_length`` for encoder-decoders)."""
    prefix = torch.full((batch, 1), start_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    while prefix.shape[1] < max_length and not bool(finished.all()):
        token = next_logits(prefix).argmax(dim=-1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        finished |= token == eos_id
    return prefix


def stepwise_greedy(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    start_id: int,
    eos_id: int,
    pad_id: int,
    max_length: int,
) -> torch.Tensor:
    """Greedy decoding of any module built from :class:`PrefixedDecoder` s: each step is
    one ``model(input_ids)`` with the prefix set on every decoder inside it."""

    def next_logits(prefix: torch.Tensor) -> torch.Tensor:
        with decoding(model, prefix):
            return model(input_ids)

    return greedy_loop(
        next_logits, input_ids.shape[0], input_ids.device,
        start_id=start_id, eos_id=eos_id, pad_id=pad_id, max_length=max_length,
    )  # fmt: skip


def greedy_generate(
    model: nn.Module, input_ids: torch.Tensor, *, max_length: int, special_ids: dict[str, int]
) -> torch.Tensor:
    """Greedy target ids of ``model`` (its own decoder when it is a PrefixedDecoder)."""
    if isinstance(model, PrefixedDecoder):
        return model.greedy(input_ids, max_length)
    return stepwise_greedy(model, input_ids, **special_ids, max_length=max_length)


def generate_texts(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    decode: Callable[[torch.Tensor], list[str]],
    *,
    special_ids: dict[str, int],
    max_length: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    desc: str = "generate",
) -> tuple[list[str], np.ndarray]:
    """(generated texts, labels) over all batches, in batch order; bf16/fp16 by autocast."""
    model.eval()
    texts: list[str] = []
    labels: list[np.ndarray] = []
    autocast = dtype != torch.float32 and device.type in ("cuda", "cpu")
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=autocast):
        for input_ids, batch_labels in progress_bar(batches, desc=desc, enabled=progress):
            output = greedy_generate(
                model,
                input_ids.to(device, non_blocking=True),
                max_length=max_length,
                special_ids=special_ids,
            )
            texts.extend(decode(output.cpu()))
            labels.append(batch_labels.numpy())
    return texts, (np.concatenate(labels) if labels else np.zeros(0))


# ---------------------------------------------------------------------------- metrics
def exact_match(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Percent of predictions equal to their target string (no normalisation)."""
    if len(predictions) != len(targets):
        raise ValueError("predictions and targets differ in length")
    if not predictions:
        raise RuntimeError("nothing to score: the split has no examples")
    hits = sum(prediction == target for prediction, target in zip(predictions, targets))
    return 100.0 * hits / len(predictions)


def parse_number(text: str) -> float:
    """``float(text)``, or 0.0 when the text is not a number (FusionBench's rule)."""
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def spearman_percent(predictions: Sequence[str], targets: Sequence[float]) -> float:
    """100 × Spearman ρ between the parsed predictions and the targets.

    A constant prediction (or target) has no rank correlation; it counts as 0 rather than
    NaN, so a model that always prints the same score is scored as uninformative.
    """
    from scipy.stats import spearmanr

    if not predictions:
        raise RuntimeError("nothing to score: the split has no examples")
    values = np.asarray([parse_number(text) for text in predictions], dtype=np.float64)
    truth = np.asarray(targets, dtype=np.float64)
    if len(values) < 2 or np.ptp(values) == 0 or np.ptp(truth) == 0:
        return 0.0
    return 100.0 * float(spearmanr(values, truth).statistic)
