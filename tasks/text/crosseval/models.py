"""The causal LMs of a crosseval run: a base and its experts by hub id, one tokenizer.

The experts must be fine-tunes of the base (same architecture and vocabulary; the pool
then checks every tensor); responses are generated with the base's tokenizer. A merged
state becomes ``AutoModelForCausalLM`` of the base's config without initialising weights
first (the state's tensors are assigned, not copied). When the shared causal-LM helpers
of the LLM suites land (``tasks/llm/models.py``), this module should defer to them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.errors import CheckpointError, HarnessError
from harness.weights.hub import ResolvedArtifact

MODEL_FILES = ("*.json", "*.safetensors", "tokenizer.model", "merges.txt")
ARCHITECTURE = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers")


def parse_pairs(value: str, option: str, example: str) -> dict[str, str]:
    """``a=x,b=y`` → {"a": "x", "b": "y"}, or a one-line error."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in str(value).split(",")):
        if not item:
            continue
        name, sep, target = (text.strip() for text in item.partition("="))
        if not sep or not name or not target or name in pairs:
            raise HarnessError(
                f"{option}= expects distinct name=value pairs separated by commas "
                f"(e.g. {option}={example}); got {item!r}"
            )
        pairs[name] = target
    return pairs


def read_config(model: ResolvedArtifact) -> dict[str, Any]:
    try:
        return json.loads((Path(model.path) / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{model.id} at {model.path} has no readable config.json ({type(error).__name__}); "
            "download it again"
        ) from None


def check_expert(base: ResolvedArtifact, name: str, expert: ResolvedArtifact) -> None:
    ours, theirs = read_config(base), read_config(expert)
    for key in ARCHITECTURE:
        if key in ours and theirs.get(key) != ours[key]:
            raise CheckpointError(
                f"expert {name!r} ({expert.id}) has {key}={theirs.get(key)} but the base "
                f"{base.id} has {ours[key]}: give experts fine-tuned from this base"
            )


def load_tokenizer(model: ResolvedArtifact) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model.path), trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(
            f"{model.id} at {model.path} has no usable tokenizer ({type(error).__name__}); "
            "download its tokenizer files again"
        ) from None
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def evaluation_dtype(name: str, device: torch.device, stored: torch.dtype) -> torch.dtype:
    """``auto``: the stored dtype on CUDA, float32 on CPU."""
    chosen = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(name)
    if chosen is not None:
        return chosen
    if device.type == "cuda" and stored in (torch.bfloat16, torch.float16):
        return stored
    return torch.float32


def build_causal_lm(
    config: Any, state: Mapping[str, torch.Tensor], dtype: torch.dtype
) -> torch.nn.Module:
    """``AutoModelForCausalLM`` of ``config`` holding ``state`` (tied embeddings re-tied)."""
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
    tensors = {name: tensor.to(dtype) for name, tensor in state.items()}
    result = model.load_state_dict(tensors, strict=False, assign=True)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing = [name for name in result.missing_keys if name not in tied]
    if missing or result.unexpected_keys:
        first = (missing or result.unexpected_keys)[0]
        raise CheckpointError(
            f"the merged state {'lacks' if missing else 'has an extra'} tensor {first} for "
            f"{config.model_type}; experts must be fine-tunes of the base"
        )
    if tied:
        model.tie_weights()
    return model.eval()
