"""Token sequences of a text task: cached tokenisation and length-bucketed batches.

Why buckets: padding every example to 512 tokens (FusionBench's recipe) spends most of a
GLUE forward pass on padding; sorting a split by length and padding each batch only to its
longest example gives the same per-example outputs for a fraction of the work.

Why a single tensor per batch: a batch is ``(input_ids, labels)`` with right padding by the
model's pad id, so every data-based method that already calls ``model(inputs.to(device))``
works unchanged. The model derives its attention mask from ``input_ids != pad_id`` (see
:func:`attention_mask`); that is exact for tokenisers whose pad id never occurs in text
(BERT's ``[PAD]``, T5's ``<pad>``) and for right-padded causal models (GPT-2), where padding
after a token cannot change that token's output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.cache import atomic_path, cache_dir, cached_directory, content_key

TOKEN_CACHE_FORMAT = 1
# Batch order is shuffled with this seed after bucketing, so a method that cycles through
# batches (AdaMerging) does not see all short sequences first; evaluation is unaffected.
BATCH_ORDER_SEED = 0


@dataclass
class TokenizedSplit:
    """Token ids of every example (ragged), with one label each (int class or float)."""

    ids: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TokenizedSplit:
        indices = np.asarray(indices, dtype=np.int64)
        return TokenizedSplit([self.ids[i] for i in indices], self.labels[indices])

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.ids), dtype=np.int64, count=len(self.ids))

    # ------------------------------------------------------------------ storage
    def save(self, directory: Path) -> None:
        lengths = self.lengths()
        flat = np.concatenate(self.ids) if self.ids else np.zeros(0, dtype=np.int32)
        with atomic_path(directory / "tokens.npz") as temporary, open(temporary, "wb") as out:
            np.savez(out, flat=flat.astype(np.int32), lengths=lengths, labels=self.labels)

    @classmethod
    def load(cls, directory: Path) -> TokenizedSplit:
        with np.load(directory / "tokens.npz") as stored:
            flat, lengths, labels = stored["flat"], stored["lengths"], stored["labels"]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ids = [flat[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]
        return cls(ids, labels)


def tokenize_texts(
    tokenizer: Any,
    texts: Sequence[str] | Sequence[tuple[str, str]],
    labels: Sequence[Any],
    *,
    max_length: int,
    batch_size: int = 1000,
) -> TokenizedSplit:
    """Tokenise single texts or (text, text) pairs with truncation and no padding."""
    ids: list[np.ndarray] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        if chunk and isinstance(chunk[0], tuple):
            first, second = zip(*chunk)
            encoded = tokenizer(list(first), list(second), truncation=True, max_length=max_length)
        else:
            encoded = tokenizer(chunk, truncation=True, max_length=max_length)
        ids.extend(np.asarray(row, dtype=np.int32) for row in encoded["input_ids"])
    return TokenizedSplit(ids, np.asarray(labels))


def cached_tokenized(
    identity: dict[str, Any], build: Callable[[], TokenizedSplit]
) -> TokenizedSplit:
    """The tokenised split for ``identity`` (dataset snapshot, split, rows, tokenizer,
    template...), built with ``build()`` only when absent from the cache."""
    key = content_key("tokens", TOKEN_CACHE_FORMAT, identity)

    def write(directory: Path) -> None:
        build().save(directory)
        (directory / "identity.json").write_text(json.dumps(identity, indent=2, default=str))

    return TokenizedSplit.load(cached_directory(key, write, namespace="tokens"))


def token_cache_root() -> Path:
    return cache_dir() / "tokens"


# ---------------------------------------------------------------------------- batches
def pad_batch(sequences: Sequence[np.ndarray], pad_id: int) -> torch.Tensor:
    """Right-pad ``sequences`` to the longest one: a (batch, length) int64 tensor."""
    length = max(len(row) for row in sequences)
    batch = np.full((len(sequences), length), pad_id, dtype=np.int64)
    for index, row in enumerate(sequences):
        batch[index, : len(row)] = row
    return torch.from_numpy(batch)


def bucketed_batches(
    split: TokenizedSplit,
    *,
    pad_id: int,
    batch_size: int = 64,
    max_tokens: int | None = None,
    limit: int | None = None,
    shuffle_seed: int | None = BATCH_ORDER_SEED,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(input_ids, labels)`` batches of the first ``limit`` examples, grouped by length.

    Examples are sorted by length and cut into batches of at most ``batch_size`` examples
    (and at most ``max_tokens`` padded tokens); batch order is then permuted with a fixed
    seed (None keeps the sorted order). The same split always gives the same batches.
    """
    count = len(split) if limit is None else min(limit, len(split))
    groups = bucket_groups(
        split.lengths()[:count],
        batch_size=batch_size,
        max_tokens=max_tokens,
        shuffle_seed=shuffle_seed,
    )
    labels = torch.from_numpy(np.asarray(split.labels[:count]))
    for group in groups:
        yield pad_batch([split.ids[i] for i in group], pad_id), labels[group]


def bucket_groups(
    lengths: np.ndarray,
    *,
    batch_size: int,
    max_tokens: int | None = None,
    shuffle_seed: int | None = BATCH_ORDER_SEED,
) -> list[np.ndarray]:
    """The example indices of each batch of :func:`bucketed_batches`, in batch order
    (what maps a batch's outputs back to the examples)."""
    count = len(lengths)
    order = np.argsort(lengths, kind="stable")
    groups: list[np.ndarray] = []
    start = 0
    while start < count:
        stop = min(start + batch_size, count)
        if max_tokens is not None:
            # sorted ascending: the last member is the longest, so the cost is size × it
            while stop - start > 1 and (stop - start) * lengths[order[stop - 1]] > max_tokens:
                stop -= 1
        groups.append(order[start:stop])
        start = stop
    if shuffle_seed is not None:
        permutation = np.random.default_rng(shuffle_seed).permutation(len(groups))
        groups = [groups[i] for i in permutation]
    return groups


def attention_mask(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """1 for real tokens, 0 for padding (see the module docstring for when this is exact)."""
    return (input_ids != pad_id).long()


def last_token_index(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Index of the last non-pad token of each row (GPT2ForSequenceClassification's
    pooling: the largest position whose token is not the pad id; 0 for an all-pad row)."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_id)).argmax(dim=-1)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    head: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes, labels) of ``head(model(ids))`` over ``batches``, in batch
    order, on the CPU. Below float32 the forward pass runs under autocast; predictions
    stay on the device until the end, so there is one synchronisation per split."""
    model = model.to(device).eval()
    head = head.to(device).eval()
    autocast = dtype != torch.float32
    predicted: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for input_ids, targets in batches:
        input_ids = input_ids.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            logits = head(model(input_ids))
        predicted.append(logits.argmax(dim=-1))
        labels.append(targets)
    if not predicted:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(predicted).cpu(), torch.cat(labels).cpu()
