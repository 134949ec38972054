"""Causal LMs of a checkpoint set: tokenizer, config and vocabulary checks, and a model
built from a merged state without copying it.

Everything is checked before any merge: every expert must be the base's architecture with
its vocabulary (config), and, where it ships tokenizer files, the same token → id map
(two vocabularies of one size but different files would merge embedding rows of different
tokens, silently). The pool then checks every tensor's name and shape.

One difference is accepted: a fine-tune that *appends* tokens to the base's vocabulary (a
``[PAD]`` added for training, as in WizardMath-13B) keeps every base token's id, so its
first rows are the base's tokens; :class:`TrimmedCheckpoint` reads it without the appended
rows, and the merged model keeps the base's tokenizer (the record says what was trimmed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from harness.errors import CheckpointError
from harness.weights.hub import ResolvedArtifact
from harness.weights.pool import Checkpoint, Rows

#: What a causal LM's snapshot needs: config, safetensors shards (and their index),
#: tokenizer files (tokenizer.json, SentencePiece tokenizer.model, BPE vocab/merges).
MODEL_FILES = ("*.json", "*.safetensors", "tokenizer.model", "merges.txt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
#: config fields that must agree between the base and an expert
ARCHITECTURE_FIELDS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
)


def read_config(model: ResolvedArtifact) -> dict[str, Any]:
    path = Path(model.path) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{model.id} at {model.path} has no readable config.json ({type(error).__name__}); "
            "download it again"
        ) from None
    return config.get("text_config", config) if "text_config" in config else config


def check_architecture(base: ResolvedArtifact, name: str, expert: ResolvedArtifact) -> int:
    """The expert is the base's architecture, or one line. Returns how many tokens its
    vocabulary appends to the base's (0 for the same vocabulary): fine-tunes often add a
    padding token (MergeLM's WizardMath has ``[PAD]``), whose rows are left out of the pool."""
    ours, theirs = read_config(base), read_config(expert)
    for key in ARCHITECTURE_FIELDS:
        if key not in ours or theirs.get(key) == ours[key]:
            continue
        if key == "vocab_size" and isinstance(theirs.get(key), int) and theirs[key] > ours[key]:
            continue  # appended tokens: checked against the tokenizers, then trimmed
        raise CheckpointError(
            f"expert {name!r} ({expert.id}) has {key}={theirs.get(key)} but the base "
            f"{base.id} has {ours[key]}: it is not a fine-tune of this base (another "
            "base model or vocabulary); give experts of the same base"
        )
    return int(theirs.get("vocab_size", 0) or 0) - int(ours.get("vocab_size", 0) or 0)


def has_tokenizer(model: ResolvedArtifact) -> bool:
    return any((Path(model.path) / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(model: ResolvedArtifact) -> Any:
    """The model's tokenizer (never remote code), or a one-line error with the fix."""
    from transformers import AutoTokenizer

    target = model.path if model.source == "mirror" else f"DIR/models/{model.id}"
    fetch = (
        f"download them with `hf download {model.id} --include '*.json' --include "
        f"tokenizer.model --include merges.txt --local-dir {target}`"
    )
    if not has_tokenizer(model):
        raise CheckpointError(
            f"{model.id} at {model.path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
            f"{fetch}"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model.path), trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError, ImportError) as error:
        raise CheckpointError(
            f"{model.id} at {model.path} has no usable tokenizer ({type(error).__name__}); {fetch}"
        ) from None
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token  # batching only: padded positions are masked
    return tokenizer


def check_tokenizer(
    base_tokenizer: Any, base_id: str, name: str, expert: ResolvedArtifact, rows: int
) -> list[str]:
    """An expert that ships tokenizer files must give every base token the base's id;
    tokens it appends must lie beyond the base's ``rows`` embedding rows (they are left
    out). Returns the appended tokens."""
    if not has_tokenizer(expert):
        return []
    ours = base_tokenizer.get_vocab()
    theirs = load_tokenizer(expert).get_vocab()
    differing = sorted(token for token in ours if theirs.get(token, -1) != ours[token])
    appended = sorted(set(theirs) - set(ours), key=theirs.__getitem__)
    if not differing and all(theirs[token] >= rows for token in appended):
        return appended
    if differing:
        token = differing[0]
        example = (
            f"{token!r} is id {theirs[token]} there and {ours[token]} in the base"
            if token in theirs
            else f"{token!r} is missing there"
        )
    else:
        example = f"{appended[0]!r} takes id {theirs[appended[0]]}, inside the base's rows"
    raise CheckpointError(
        f"expert {name!r} ({expert.id}) has another tokenizer than the base {base_id} "
        f"({len(theirs)} tokens against {len(ours)}; {example}): its embedding rows mean other "
        "tokens, so it cannot be merged with this base"
    )


@dataclass(frozen=True)
class TrimmedCheckpoint(Checkpoint):
    """An expert whose vocabulary appends tokens to the base's: its embedding and output
    matrices (``vocab_rows`` rows) are read without the rows beyond ``keep_rows``, so the
    pool, the merge and the merged model have the base's shapes and tokenizer."""

    vocab_rows: int = 0
    keep_rows: int = 0

    @cached_property
    def trimmed(self) -> frozenset[str]:
        return frozenset(
            name
            for name, (shape, _) in super().meta().items()
            if len(shape) == 2 and shape[0] == self.vocab_rows
        )

    def meta(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        meta = super().meta()
        for name in self.trimmed:
            shape, dtype = meta[name]
            meta[name] = ((self.keep_rows, *shape[1:]), dtype)
        return meta

    def tensor(
        self,
        name: str,
        device: str | torch.device = "cpu",
        rows: Rows | None = None,
        handles: dict[Path, Any] | None = None,
    ) -> torch.Tensor:
        if name in self.trimmed:
            start, stop = rows if rows is not None else (0, self.keep_rows)
            rows = (start, min(stop, self.keep_rows))
        return super().tensor(name, device, rows, handles)


def evaluation_dtype(name: str, device: torch.device, stored: torch.dtype) -> torch.dtype:
    """``auto``: the stored dtype on CUDA (bf16 checkpoints stay bf16), float32 on CPU
    (CPU bf16 matmuls are slow and not what GPU runs compute)."""
    chosen = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(name)
    if chosen is not None:
        return chosen
    if device.type == "cuda" and stored in (torch.bfloat16, torch.float16):
        return stored
    return torch.float32


def build_causal_lm(
    config: Any, state: Mapping[str, torch.Tensor], dtype: torch.dtype
) -> torch.nn.Module:
    """``AutoModelForCausalLM`` of ``config`` holding ``state``'s tensors (cast to ``dtype``
    only where they differ): the module is built without initialising its weights, then
    takes the tensors over (``assign``), so an 8B merge is not copied a second time.
    Tied input/output embeddings are re-tied; any other missing or extra tensor is an error.
    """
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
    tensors = {name: tensor.to(dtype) for name, tensor in state.items()}
    result = model.load_state_dict(tensors, strict=False, assign=True)
    tied = set()
    if getattr(config.get_text_config(), "tie_word_embeddings", False):
        tied = {"lm_head.weight"}
    missing = [name for name in result.missing_keys if name not in tied]
    if missing or result.unexpected_keys:
        first = (missing or result.unexpected_keys)[0]
        kind = "lacks" if missing else "has an extra"
        raise CheckpointError(
            f"the merged state {kind} tensor {first} for {config.model_type}; experts must be "
            "fine-tunes of the base with its architecture"
        )
    if tied:
        model.tie_weights()
    return model.eval()


class ResolvedCausalLm:
    """The half of a suite over a resolved causal LM (llm-* suites, CrossEval) that is the
    same for all of them: ``prepare()`` sets ``_base`` (the resolved base) and ``_config``
    (its transformers config); ``options["dtype"]`` picks the evaluation dtype."""

    _base: ResolvedArtifact | None
    _config: Any
    options: Mapping[str, Any]
    context: Any

    @property
    def base(self) -> ResolvedArtifact:
        if self._base is None:
            raise RuntimeError("call prepare() first")
        return self._base

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        stored = next(iter(state.values())).dtype
        dtype = evaluation_dtype(str(self.options["dtype"]), self.context.device, stored)
        return build_causal_lm(self._config, state, dtype)
