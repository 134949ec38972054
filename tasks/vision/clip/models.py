"""CLIP checkpoint sets for the vision suites: where weights live and how they load.

Two sets, recorded in every result:

- ``transformers``: ``openai/clip-vit-*`` (CLIPModel) plus ``tanganke/clip-vit-*_<task>``
  fine-tuned vision encoders (CLIPVisionModel), as FusionBench publishes them.
- ``open_clip``: open_clip ``ViT-B-32`` (tag ``openai``, from ``timm/vit_base_patch32_clip_224
  .openai``) plus per-task fine-tuned state dicts of the original task-vectors release,
  converted to safetensors with ``harness convert``.

Pool names are canonical per set: the vision tower's own parameter names (transformers:
``embeddings.*``, ``encoder.layers.*``; open_clip: ``conv1.weight``, ``transformer.*``), so
old ``vision_model.``-prefixed, new unprefixed, full-CLIP and pickled-ImageEncoder
checkpoints all stream as the same names. ``image_encoder(state)`` returns a module whose
``named_parameters()`` are exactly those names and whose output is the normalised image
embedding the zero-shot heads take.
"""

from __future__ import annotations

import copy
import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from harness.errors import CheckpointError
from harness.evaluation.zeroshot import TextEncoder
from harness.weights.hub import ResolvedArtifact
from harness.weights.pool import Checkpoint, KeyMap, load_state_strict

CHECKPOINT_SETS = ("transformers", "open_clip")


@dataclass(frozen=True)
class ClipArch:
    """One CLIP architecture under both checkpoint sets."""

    name: str  # suite option value
    hf_base: str  # transformers CLIPModel hub id
    hf_expert_prefix: str  # tanganke/<prefix>_<task>
    open_clip_name: str  # open_clip architecture
    open_clip_base: str  # hub repo holding open_clip weights with the openai tag
    image_size: int = 224


ARCHS: dict[str, ClipArch] = {
    "vit-b-32": ClipArch(
        "vit-b-32",
        "openai/clip-vit-base-patch32",
        "tanganke/clip-vit-base-patch32",
        "ViT-B-32",
        "timm/vit_base_patch32_clip_224.openai",
    ),
    "vit-b-16": ClipArch(
        "vit-b-16",
        "openai/clip-vit-base-patch16",
        "tanganke/clip-vit-base-patch16",
        "ViT-B-16",
        "timm/vit_base_patch16_clip_224.openai",
    ),
    "vit-l-14": ClipArch(
        "vit-l-14",
        "openai/clip-vit-large-patch14",
        "tanganke/clip-vit-large-patch14",
        "ViT-L-14",
        "timm/vit_large_patch14_clip_224.openai",
    ),
}

# Where the converted task-vectors experts are looked up (mirror or hub): {arch}, {task}.
OPEN_CLIP_EXPERTS = "task-vectors/{arch}_{task}"

HF_ALLOW = ["*.json", "*.safetensors", "*.txt"]
OPEN_CLIP_ALLOW = ["*.json", "*.safetensors"]
OPEN_CLIP_BASE_ALLOW = ["open_clip_config.json", "open_clip_model.safetensors"]


def _normalising(module: torch.nn.Module, features: Any) -> torch.nn.Module:
    """Swap ``module``'s class for a subclass whose forward returns normalised features.

    A subclass (not a wrapper) keeps ``named_parameters()`` identical to the pool names,
    which data-based methods rely on to hook modules by name.
    """
    base = type(module)
    name = f"Normalised{base.__name__}"

    def forward(self: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(features(self, base, pixel_values), dim=-1)

    module.__class__ = type(name, (base,), {"forward": forward, "__module__": __name__})
    return module


# ---------------------------------------------------------------------------- key maps
def hf_vision_key(name: str) -> str | None:
    """transformers CLIP names → vision-tower names (``vision_model.`` prefix dropped)."""
    if name.startswith(("text_model.", "text_projection", "visual_projection", "logit_scale")):
        return None
    if name.endswith("position_ids"):  # a buffer that old checkpoints stored
        return None
    return name.removeprefix("vision_model.")


def open_clip_vision_key(name: str) -> str | None:
    """open_clip names (full CLIP, ``model.``/``module.`` wrapped) → ``visual.*`` names."""
    for prefix in ("module.", "model."):
        name = name.removeprefix(prefix)
    if not name.startswith("visual."):
        return None
    return name.removeprefix("visual.")


def _single(resolved: ResolvedArtifact, key: KeyMap) -> Checkpoint:
    return Checkpoint(resolved.path, resolved.id, key)


class ClipBackend(ABC):
    """One checkpoint set for one architecture, bound to a resolved base snapshot."""

    key_map: KeyMap

    def __init__(self, arch: ClipArch, base: ResolvedArtifact) -> None:
        self.arch = arch
        self.base = base

    @property
    @abstractmethod
    def checkpoint_set(self) -> str:
        """E.g. ``transformers:openai/clip-vit-base-patch32``."""

    def base_checkpoint(self) -> Checkpoint:
        return _single(self.base, self.key_map)

    def expert_checkpoint(self, resolved: ResolvedArtifact) -> Checkpoint:
        return _single(resolved, self.key_map)

    @abstractmethod
    def image_encoder(self, state: dict[str, torch.Tensor] | Any) -> torch.nn.Module:
        """Vision tower with ``state`` loaded (strict), eval mode, normalised output."""

    @abstractmethod
    def text_encoder(self, device: torch.device) -> TextEncoder:
        """The pretrained text encoder: list of prompts → text embeddings."""

    @abstractmethod
    def logit_scale(self) -> float:
        """CLIP's learned temperature (exp of the stored value)."""

    def _load(self, template: torch.nn.Module, state: Any) -> torch.nn.Module:
        return load_state_strict(
            copy.deepcopy(template),
            state,
            fits=self.checkpoint_set,
            fix="the experts must be fine-tuned from this suite's base model",
        )

    def _stored(self, name: str) -> torch.Tensor:
        checkpoint = Checkpoint(self.base.path, self.base.id, lambda n: n if n == name else None)
        try:
            return checkpoint.tensor(name)
        except KeyError:
            raise CheckpointError(
                f"{self.base.id} lacks {name}; the base must be a full CLIP checkpoint"
            ) from None


# ---------------------------------------------------------------------------- transformers
class TransformersBackend(ClipBackend):
    key_map = staticmethod(hf_vision_key)

    @property
    def checkpoint_set(self) -> str:
        return f"transformers:{self.arch.hf_base}"  # = ClipVisionSuite.checkpoint_set

    @cached_property
    def _template(self) -> torch.nn.Module:
        from transformers import CLIPConfig, CLIPVisionModel

        config = CLIPConfig.from_pretrained(self.base.path).vision_config
        model = CLIPVisionModel(config)
        core = getattr(model, "vision_model", model)  # transformers 4 nests the tower
        projection = self._stored("visual_projection.weight").float()
        core.register_buffer("visual_projection", projection, persistent=False)

        def features(self: Any, base: type, pixel_values: torch.Tensor) -> torch.Tensor:
            pooled = base.forward(self, pixel_values=pixel_values).pooler_output
            return pooled @ self.visual_projection.to(pooled.dtype).T

        return _normalising(core, features).eval()

    def image_encoder(self, state: Any) -> torch.nn.Module:
        return self._load(self._template, state)

    def logit_scale(self) -> float:
        return float(self._stored("logit_scale").float().exp())

    def text_encoder(self, device: torch.device) -> TextEncoder:
        from transformers import AutoTokenizer, CLIPModel

        model = CLIPModel.from_pretrained(self.base.path).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(self.base.path)
        context = int(getattr(model.config.text_config, "max_position_embeddings", 77))

        @torch.no_grad()
        def encode(texts: list[str]) -> torch.Tensor:
            tokens = tokenizer(
                texts, padding=True, truncation=True, max_length=context, return_tensors="pt"
            )
            tokens = {key: value.to(device) for key, value in tokens.items()}
            output = model.get_text_features(**tokens)
            return output if isinstance(output, torch.Tensor) else output.pooler_output

        return encode


# ---------------------------------------------------------------------------- open_clip
class OpenClipBackend(ClipBackend):
    key_map = staticmethod(open_clip_vision_key)

    @property
    def checkpoint_set(self) -> str:
        return f"open_clip:{self.arch.open_clip_name}:openai"

    @property
    def weights(self) -> Path:
        """``open_clip_model.safetensors`` when the snapshot has one: timm's hub repos also
        hold a ``model.safetensors`` in timm naming, which is not this model."""
        path = Path(self.base.path)
        named = path / "open_clip_model.safetensors"
        return named if named.is_file() else path

    def base_checkpoint(self) -> Checkpoint:
        return Checkpoint(self.weights, self.base.id, self.key_map)

    @cached_property
    def model_config(self) -> dict[str, Any]:
        """The snapshot's ``open_clip_config.json`` (as hub repos ship), else open_clip's."""
        config_file = Path(self.base.path) / "open_clip_config.json"
        if config_file.is_file():
            return json.loads(config_file.read_text())["model_cfg"]
        import open_clip

        config = open_clip.get_model_config(self.arch.open_clip_name)
        if config is None:
            raise CheckpointError(f"open_clip has no architecture {self.arch.open_clip_name!r}")
        return config

    def _build(self) -> torch.nn.Module:
        from open_clip.model import CLIP

        config = dict(self.model_config)
        config["quick_gelu"] = True  # the openai weights were trained with QuickGELU
        accepted = set(inspect.signature(CLIP).parameters)
        return CLIP(**{key: value for key, value in config.items() if key in accepted})

    @cached_property
    def _template(self) -> torch.nn.Module:
        visual = self._build().visual

        def features(self: Any, base: type, pixel_values: torch.Tensor) -> torch.Tensor:
            return base.forward(self, pixel_values)

        return _normalising(visual, features).eval()

    def image_encoder(self, state: Any) -> torch.nn.Module:
        return self._load(self._template, state)

    def _full_state(self) -> dict[str, torch.Tensor]:
        checkpoint = Checkpoint(self.weights, self.base.id, open_clip_full_key)
        return checkpoint.state_dict()

    def logit_scale(self) -> float:
        return float(self._full_state()["logit_scale"].float().exp())

    def text_encoder(self, device: torch.device) -> TextEncoder:
        import open_clip

        model = self._build()
        model.load_state_dict(self._full_state(), strict=False)
        model = model.to(device).eval()
        context_length = int(self.model_config.get("text_cfg", {}).get("context_length", 77))

        @torch.no_grad()
        def encode(texts: list[str]) -> torch.Tensor:
            tokens = open_clip.tokenize(texts, context_length=context_length).to(device)
            return model.encode_text(tokens)

        return encode


def open_clip_full_key(name: str) -> str | None:
    for prefix in ("module.", "model."):
        name = name.removeprefix(prefix)
    return name


def backend(checkpoints: str, arch: ClipArch, base: ResolvedArtifact) -> ClipBackend:
    return (TransformersBackend if checkpoints == "transformers" else OpenClipBackend)(arch, base)
