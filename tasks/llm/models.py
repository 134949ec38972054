"""Causal LMs of a checkpoint set: tokenizer, config and vocabulary checks, and a model
built from a merged state without copying it.

Everything is checked before any merge: every expert must be the base's architecture with
its vocabulary (config), and, where it ships tokenizer files, the same token → id map
(two vocabularies of one size but different files would merge embedding rows of different
tokens, silently). The pool then checks every tensor's name and shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.errors import CheckpointError
from harness.weights.hub import ResolvedArtifact

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


def check_architecture(base: ResolvedArtifact, name: str, expert: ResolvedArtifact) -> None:
    """The expert is the base's architecture with the base's vocabulary size, or one line."""
    ours, theirs = read_config(base), read_config(expert)
    for key in ARCHITECTURE_FIELDS:
        if key in ours and theirs.get(key) != ours[key]:
            raise CheckpointError(
                f"expert {name!r} ({expert.id}) has {key}={theirs.get(key)} but the base "
                f"{base.id} has {ours[key]}: it is not a fine-tune of this base (another "
                "base model or vocabulary); give experts of the same base"
            )


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


def check_tokenizer(base_tokenizer: Any, base_id: str, name: str, expert: ResolvedArtifact) -> None:
    """An expert that ships tokenizer files must map every token to the base's id."""
    if not has_tokenizer(expert):
        return
    ours = base_tokenizer.get_vocab()
    theirs = load_tokenizer(expert).get_vocab()
    if theirs == ours:
        return
    differing = sorted(
        token for token in ours.keys() & theirs.keys() if ours[token] != theirs[token]
    )
    only = sorted(theirs.keys() - ours.keys()) or sorted(ours.keys() - theirs.keys())
    example = (
        f"{differing[0]!r} is id {theirs[differing[0]]} there and {ours[differing[0]]} in the base"
        if differing
        else f"{only[0]!r} is in one vocabulary only"
    )
    raise CheckpointError(
        f"expert {name!r} ({expert.id}) has another tokenizer than the base {base_id} "
        f"({len(theirs)} tokens against {len(ours)}; {example}): its embedding rows mean other "
        "tokens, so it cannot be merged with this base"
    )


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
