"""GPT-2 checkpoints of the glue-gpt2 suite: pool names, weights, backbone and heads.

FusionBench's pool is the base ``gpt2`` (a GPT2LMHeadModel whose weights are stored
without a prefix: ``h.0.attn.c_attn.weight``) and one GPT2ForSequenceClassification per
task (``transformer.h.0...`` plus ``score.weight``). Only the backbone is merged: the pool
names are GPT2Model's own parameter names, the ``transformer.`` prefix is dropped and the
heads (``score.*``), the LM head and the causal-mask buffers old checkpoints stored
(``*.attn.bias``, ``*.attn.masked_bias``) are left out. Each task keeps its expert's
``score`` head (a bias-free linear layer).

Scoring follows GPT2ForSequenceClassification: the score head is applied to the hidden
state of each row's last non-pad token. Batches are right-padded, so no attention mask is
needed: under causal attention no token attends to the padding after it, and text that
contains the pad token itself (``<|endoftext|>``) is attended to as the tokenizer's own
attention mask would have it.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.cache import cached_directory, content_key
from harness.errors import ArtifactNotFoundError, CheckpointError
from harness.evaluation.text import last_token_index
from harness.weights.convert import convert_checkpoint
from harness.weights.hub import ResolvedArtifact
from harness.weights.pool import Checkpoint, load_state_strict
from harness.weights.snapshot_id import snapshot_fingerprint

BASE = "gpt2"
EXPERTS = "tanganke/gpt2_{task}"
# config, tokenizer (tokenizer.json or vocab.json + merges.txt) and safetensors weights
MODEL_FILES = ("*.json", "*.txt", "*.safetensors")
TORCH_WEIGHTS = "pytorch_model.bin"
PAD_TOKEN = "<|endoftext|>"
MAX_LENGTH = 512  # FusionBench's GPT-2 tokenizer: model_max_length = 512


def backbone_key(stored: str) -> str | None:
    """A stored tensor name → its GPT2Model name, or None for what is not merged."""
    name = stored.removeprefix("transformer.")
    if name.startswith(("score.", "lm_head.")):
        return None
    if name.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers
        return None
    return name


def _score_key(stored: str) -> str | None:
    return "score.weight" if stored == "score.weight" else None


def has_safetensors(path: Path) -> bool:
    return any(Path(path).glob("*.safetensors"))


def weights(resolved: ResolvedArtifact) -> Path:
    """Where the snapshot's safetensors weights are: the snapshot itself, or, for a
    snapshot with only ``pytorch_model.bin``, a safetensors copy converted once into the
    harness cache (read with ``torch.load(weights_only=True)``)."""
    path = Path(resolved.path)
    if has_safetensors(path):
        return path
    source = path / TORCH_WEIGHTS
    if not source.is_file():
        raise ArtifactNotFoundError(
            f"{resolved.id} at {path} has no weights (model.safetensors or {TORCH_WEIGHTS}); "
            f"fetch them with `hf download {resolved.id} --include '*.safetensors' "
            f"--include {TORCH_WEIGHTS} --local-dir {path}`"
        )
    identity = resolved.revision or f"files:{snapshot_fingerprint(path)}"
    key = content_key("gpt2-weights", resolved.id, identity)
    return cached_directory(
        key, lambda directory: convert_checkpoint(source, directory), namespace="converted"
    )


def checkpoint(resolved: ResolvedArtifact) -> Checkpoint:
    """The backbone tensors of a base or expert snapshot, under GPT2Model's names."""
    return Checkpoint(weights(resolved), resolved.id, backbone_key)


def read_config(resolved: ResolvedArtifact) -> dict[str, Any]:
    file = Path(resolved.path) / "config.json"
    if not file.is_file():
        raise ArtifactNotFoundError(
            f"{resolved.id} at {resolved.path} has no config.json; fetch it with "
            f"`hf download {resolved.id} --include '*.json' --local-dir {resolved.path}`"
        )
    try:
        return json.loads(file.read_text())
    except ValueError:
        raise CheckpointError(f"{file} is not valid JSON; download it again") from None


def score_head(resolved: ResolvedArtifact, task: str, num_labels: int) -> torch.nn.Linear:
    """The expert's ``score`` layer, checked to have the task's number of labels."""
    found = Checkpoint(weights(resolved), resolved.id, _score_key)
    try:
        weight = found.tensor("score.weight").float()
    except KeyError:
        raise CheckpointError(
            f"{resolved.id} has no score.weight; the {task} expert must be a "
            "GPT2ForSequenceClassification checkpoint"
        ) from None
    if weight.dim() != 2 or weight.shape[0] != num_labels:
        raise CheckpointError(
            f"{resolved.id}'s score head has {weight.shape[0]} labels but GLUE {task} has "
            f"{num_labels}; give the expert fine-tuned on {task}"
        )
    head = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        head.weight.copy_(weight)
    return head.eval().requires_grad_(False)


def load_tokenizer(resolved: ResolvedArtifact) -> tuple[Any, int]:
    """The base's tokenizer and its pad id: ``<|endoftext|>``, as FusionBench pads GPT-2."""
    path = Path(resolved.path)
    has_files = (path / "tokenizer.json").is_file() or (
        (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    )
    if not has_files:
        raise ArtifactNotFoundError(
            f"{resolved.id} at {path} has no tokenizer (tokenizer.json, or vocab.json and "
            f"merges.txt); fetch it with `hf download {resolved.id} --include '*.json' "
            f"--include '*.txt' --local-dir {path}`"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # tokenizers raise many types for damaged files
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise CheckpointError(
            f"the tokenizer of {resolved.id} at {path} cannot be loaded "
            f"({type(error).__name__}: {first}); download it again"
        ) from None
    pad_id = tokenizer.get_vocab().get(PAD_TOKEN)
    if pad_id is None:
        raise CheckpointError(
            f"the tokenizer of {resolved.id} has no {PAD_TOKEN} token; glue-gpt2 needs "
            "GPT-2's byte-level BPE tokenizer"
        )
    tokenizer.pad_token = PAD_TOKEN
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer, int(pad_id)


@functools.cache
def backbone_class() -> type:
    """GPT2Model whose forward takes right-padded int64 ``input_ids`` and returns the
    hidden state at each row's last non-pad token (GPT2ForSequenceClassification's
    pooling). A subclass, not a wrapper, so ``named_parameters()`` are the pool names."""
    from transformers import GPT2Model

    class GPT2LastToken(GPT2Model):
        pad_id: int = 0

        def warn_if_padding_and_no_attention_mask(self, *args: Any, **kwargs: Any) -> None:
            """Right padding under causal attention needs no mask (module docstring)."""

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            hidden = super().forward(input_ids=input_ids).last_hidden_state
            index = last_token_index(input_ids, self.pad_id)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]

    return GPT2LastToken


def backbone_template(config: Any, pad_id: int) -> Any:
    """An initialised backbone of ``config`` that :func:`build_backbone` copies: built once
    per suite, so its buffers (the causal mask of transformers 4's attention) are real."""
    model = backbone_class()(config)
    model.pad_id = pad_id
    return model.eval()


def build_backbone(template: Any, state: Mapping[str, torch.Tensor]) -> Any:
    """A copy of ``template`` with ``state`` loaded (strict), in eval mode."""
    return load_state_strict(
        copy.deepcopy(template),
        state,
        fits="GPT-2",
        fix="the experts must be fine-tuned from gpt2",
    )
