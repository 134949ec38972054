"""LoRA experts as dense checkpoints: each adapter merged into its base once, then cached.

Methods merge dense weights, so a LoRA expert enters the pool as W + (α/r) B A for every
adapted matrix, computed by peft's own ``merge_and_unload`` (the rule the adapters were
trained under, including any rank-stabilised or per-module scaling their config sets)
before any method runs. The merged weights are written once as safetensors under the
harness cache, keyed by the identities of the base and the adapter, in the base's stored
dtypes and under the pool's names.

An adapter's ``adapter_config.json`` names the model it was trained on; one that names
another model than the suite's base is refused before anything is merged.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.cache import cached_directory, content_key
from harness.errors import CheckpointError
from harness.progress import note
from harness.weights.hub import ResolvedArtifact
from harness.weights.pool import Checkpoint
from tasks.text.glue.t5 import t5_key

MERGE_FORMAT = 1
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def adapter_config(adapter: ResolvedArtifact) -> dict[str, Any]:
    """The adapter's ``adapter_config.json``, checked to be a peft LoRA adapter."""
    path = Path(adapter.path) / "adapter_config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{adapter.id} at {adapter.path} has no adapter_config.json; it is not a peft "
            "adapter (download it again, or use checkpoints=full for fully fine-tuned experts)"
        )
    try:
        config = json.loads(path.read_text())
    except ValueError:
        raise CheckpointError(f"{path} is not valid JSON; download {adapter.id} again") from None
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise CheckpointError(
            f"{adapter.id} is a {config.get('peft_type')!r} adapter, not LoRA; "
            "only LoRA adapters are merged into dense experts"
        )
    return config


def same_model(named: str, base_id: str) -> bool:
    """Whether an adapter's ``base_model_name_or_path`` names ``base_id``: the hub id
    itself, or a local copy of it (a path ending in the id or in its repository name)."""
    named = named.rstrip("/")
    return (
        named == base_id
        or named.endswith("/" + base_id)
        or Path(named).name == (base_id.rsplit("/", 1)[-1])
    )


def check_adapter(adapter: ResolvedArtifact, base_id: str) -> None:
    """Fail in one line when the adapter was trained on another base model."""
    named = adapter_config(adapter).get("base_model_name_or_path")
    if named and not same_model(str(named), base_id):
        raise CheckpointError(
            f"LoRA adapter {adapter.id} was trained on {named!r}, not on this suite's base "
            f"{base_id!r}; pick the checkpoint set whose base it names (--suite-set "
            "checkpoints=...) or adapters trained on that base"
        )


def merged_checkpoints(
    base: ResolvedArtifact,
    adapters: Mapping[str, ResolvedArtifact],
) -> dict[str, Path]:
    """Task → directory of that adapter merged into ``base`` (``model.safetensors``)."""
    for adapter in adapters.values():
        check_adapter(adapter, base.id)
    loaded: list[torch.nn.Module] = []

    def base_model() -> torch.nn.Module:
        if not loaded:
            from transformers import T5ForConditionalGeneration

            loaded.append(
                T5ForConditionalGeneration.from_pretrained(base.path, dtype=torch.float32)
            )
        return loaded[0]

    result = {}
    for task, adapter in adapters.items():
        key = content_key("lora-merge", MERGE_FORMAT, base.id, base.identity(), adapter.identity())

        def build(directory: Path, adapter: ResolvedArtifact = adapter) -> None:
            note(f"merging LoRA adapter {adapter.id} into {base.id} (once; cached)")
            state = merge_adapter(base_model(), adapter)
            write_state(directory, state, stored_dtypes(base))
            (directory / "merged_from.json").write_text(
                json.dumps({"base": base.id, "adapter": adapter.id}, indent=2)
            )

        result[task] = cached_directory(key, build, namespace="lora-merged")
    return result


def merge_adapter(base: torch.nn.Module, adapter: ResolvedArtifact) -> dict[str, torch.Tensor]:
    """Pool name → merged float32 tensor, by peft's ``merge_and_unload`` on a copy of base."""
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(copy.deepcopy(base), str(adapter.path))
    except (RuntimeError, ValueError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise CheckpointError(
            f"LoRA adapter {adapter.id} does not fit {type(base).__name__} "
            f"({type(error).__name__}: {first}); it must be trained on the suite's base"
        ) from None
    merged = model.merge_and_unload()
    return {
        name: parameter.detach().contiguous()
        for name, parameter in merged.named_parameters()
        if t5_key(name) == name
    }


def stored_dtypes(base: ResolvedArtifact) -> dict[str, torch.dtype]:
    meta = Checkpoint(base.path, base.id, t5_key).meta()
    return {name: dtype for name, (_, dtype) in meta.items()}


def write_state(
    directory: Path, state: Mapping[str, torch.Tensor], dtypes: Mapping[str, torch.dtype]
) -> None:
    from safetensors.torch import save_file

    tensors = {name: value.to(dtypes.get(name, value.dtype)) for name, value in state.items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
