"""CLIP vision merging suites: vit8, vit14, vit20 (task-arithmetic protocol).

One pretrained CLIP, one fine-tuned vision encoder per task; every task is scored by
zero-shot classification with the pretrained text encoder's class-name embeddings
(templates averaged, normalised), top-1 accuracy on the test split.

Options (``--suite-set key=value``): ``arch`` vit-b-32 | vit-b-16 | vit-l-14;
``checkpoints`` transformers | open_clip; ``dtype`` auto | bf16 | fp16 | fp32;
``eval_batch_size``; ``check_labels``; ``experts`` (a repo pattern with {task}, {arch}).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from harness.evaluation.fast import default_batch_size, fast_accuracy, resolve_dtype
from harness.evaluation.tensor_store import (
    Preprocess,
    TensorStore,
    cached_store,
    store_key,
    store_root,
)
from harness.evaluation.zeroshot import TextEncoder, ZeroShotHead, cached_head_weights
from harness.registry import Param, register_suite
from harness.suite import Artifact, ClassificationSuite, SuiteContext
from harness.weights.hub import Requirement, ResolvedArtifact, resolve_all
from harness.weights.pool import ExpertPool
from tasks.vision.clip import datasets as data
from tasks.vision.clip.models import (
    ARCHS,
    CHECKPOINT_SETS,
    HF_ALLOW,
    OPEN_CLIP_ALLOW,
    OPEN_CLIP_BASE_ALLOW,
    OPEN_CLIP_EXPERTS,
    ClipBackend,
    backend,
)
from tasks.vision.clip.published import PUBLISHED_VIT8

PARAMS = {
    "arch": Param("vit-b-32", "CLIP architecture", choices=tuple(ARCHS)),
    "checkpoints": Param(
        "transformers",
        "transformers: openai/clip-vit-* + tanganke experts; open_clip: task-vectors release",
        choices=CHECKPOINT_SETS,
    ),
    "dtype": Param(
        "auto",
        "evaluation precision (auto: bf16 on CUDA, fp32 on CPU)",
        choices=("auto", "bf16", "fp16", "fp32"),
    ),
    "eval_batch_size": Param(0, "evaluation batch size (0: 1024 on CUDA, 256 on CPU)", low=0),
    "check_labels": Param(True, "fail when dataset label names differ from the class names"),
    "experts": Param("", "expert repo pattern with {task} and {arch} (empty: the set's own)"),
}


class ClipVisionSuite(ClassificationSuite):
    """Base of the CLIP suites; subclasses set ``tasks``."""

    metric = "accuracy"

    def __init__(self, context: SuiteContext) -> None:
        super().__init__(context)
        self.tasks = list(type(self).tasks)
        options = {name: param.default for name, param in PARAMS.items()}
        options.update(context.options)
        self.options = options
        self.arch = ARCHS[options["arch"]]
        rounding = "floor" if options["checkpoints"] == "transformers" else "round"
        self.preprocess = Preprocess(size=self.arch.image_size, crop_rounding=rounding)
        self._backend: ClipBackend | None = None
        self._experts: dict[str, ResolvedArtifact] = {}
        self._datasets: dict[str, ResolvedArtifact] = {}
        self._heads: dict[str, torch.Tensor] = {}
        self._stores: dict[tuple[str, str], TensorStore] = {}
        self._splits: dict[tuple[str, str], Any] = {}
        self._logit_scale = 100.0

    # ------------------------------------------------------------------ identity
    @property
    def checkpoints(self) -> str:
        return self.options["checkpoints"]

    @property
    def checkpoint_set(self) -> str:
        if self.checkpoints == "transformers":
            return f"transformers:{self.arch.hf_base}"
        return f"open_clip:{self.arch.open_clip_name}:openai"

    @property
    def backend(self) -> ClipBackend:
        if self._backend is None:
            raise RuntimeError("call prepare() first")
        return self._backend

    def expert_id(self, task: str) -> str:
        spec = data.TASKS[task]
        pattern = self.options["experts"]
        if self.checkpoints == "transformers":
            pattern = pattern or f"{self.arch.hf_expert_prefix}_{{task}}"
            return pattern.format(task=spec.expert, arch=self.arch.name)
        pattern = pattern or OPEN_CLIP_EXPERTS
        return pattern.format(task=spec.name, arch=self.arch.open_clip_name)

    # ------------------------------------------------------------------ prepare
    def required_artifacts(self) -> list[Requirement]:
        """Base, one expert per task, one dataset per task: checked together up front."""
        if self.checkpoints == "transformers":
            base = Requirement(self.arch.hf_base, "models", tuple(HF_ALLOW))
        else:
            base = Requirement(self.arch.open_clip_base, "models", tuple(OPEN_CLIP_BASE_ALLOW))
        experts = [self._expert_requirement(task) for task in self.tasks]
        datasets = [Requirement(data.TASKS[task].dataset, "datasets") for task in self.tasks]
        return [base, *experts, *datasets]

    def _expert_requirement(self, task: str) -> Requirement:
        repo = self.expert_id(task)
        if self.checkpoints == "transformers":
            return Requirement(repo, "models", tuple(HF_ALLOW))
        fetch = None
        if not self.options["experts"]:  # the task-vectors release is not on the hub
            release = data.TASKS[task].open_clip_expert
            fetch = (
                f"harness convert checkpoint <checkpoints>/{self.arch.open_clip_name}/"
                f'{release}/finetuned.pt "$MIRROR/models/{repo}" --allow-pickle'
            )
        return Requirement(repo, "models", tuple(OPEN_CLIP_ALLOW), fetch)

    def prepare(self) -> None:
        needed = self.required_artifacts()
        resolved = resolve_all(needed, mirror=self.context.mirror, needed_by=self.name or "suite")
        base, found = resolved[0], dict(zip(needed, resolved))
        self._backend = backend(self.checkpoints, self.arch, base)
        for task in self.tasks:
            self._experts[task] = found[self._expert_requirement(task)]
            self._datasets[task] = found[Requirement(data.TASKS[task].dataset, "datasets")]
        self._logit_scale = self.backend.logit_scale()
        encoder: list[TextEncoder] = []

        def text_encoder() -> TextEncoder:
            if not encoder:
                encoder.append(self.backend.text_encoder(self.context.device))
            return encoder[0]

        for task in self.tasks:
            self._heads[task] = cached_head_weights(
                [self.checkpoint_set, base.identity()],
                data.classnames(task),
                data.templates(task),
                text_encoder,
            )
            self.store(task, "test")

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        experts = {task: self.backend.expert_checkpoint(self._experts[task]) for task in self.tasks}
        return ExpertPool(self.backend.base_checkpoint(), experts)

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        return self.backend.image_encoder(state)

    def head(self, task: str) -> torch.nn.Module:
        return ZeroShotHead(self._heads[task], self._logit_scale)

    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised float32 images and labels, read from the task's tensor store."""
        return self.store(task, split, limit).batches(
            batch_size, limit=limit, preprocess=self.preprocess
        )

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        device = self.context.device
        batch = int(self.options["eval_batch_size"]) or default_batch_size(device)
        return fast_accuracy(
            model.to(device),
            self.head(task),
            self.store(task, split, limit),
            self.preprocess,
            device=device,
            dtype=resolve_dtype(self.options["dtype"], device),
            batch_size=batch,
            limit=limit,
        )

    def artifacts(self) -> list[Artifact]:
        found = [Artifact.of("base", self.backend.base)]
        found += [Artifact.of(f"expert:{task}", self._experts[task]) for task in self.tasks]
        found += [Artifact.of(f"dataset:{task}", self._datasets[task]) for task in self.tasks]
        return found

    # ------------------------------------------------------------------ data
    def _split(self, task: str, hub_split: str) -> Any:
        key = (task, hub_split)
        if key not in self._splits:
            spec = data.TASKS[task]
            resolved = self._datasets[task]
            dataset = data.load_split(resolved.path, spec, hub_split)
            if self.options["check_labels"]:
                data.check_label_names(
                    spec,
                    data.label_names(dataset, spec),
                    data.classnames(task),
                    f"dataset {spec.dataset!r} ({hub_split})",
                )
            self._splits[key] = dataset
        return self._splits[key]

    def store(self, task: str, split: str, limit: int | None = None) -> TensorStore:
        """The task's split as a tensor store, built once (``limit``: first rows only)."""
        if split not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {split!r}")
        known = self._stores.get((task, split))
        if known is not None and (limit is None or len(known) >= limit or known.meta["full"]):
            return known
        spec = data.TASKS[task]
        resolved = self._datasets[task]
        hub_split = spec.test_split if split == "test" else spec.train_split
        base_identity = {
            "dataset": spec.dataset,
            "config": spec.config,
            "split": hub_split,
            "snapshot": resolved.identity(),
        }
        if split != "test":
            base_identity["carve"] = {
                "part": split,
                "fraction": data.VALIDATION_FRACTION,
                "seed": data.VALIDATION_SEED,
            }
        full_identity = {**base_identity, "rows": "all"}
        if (store_root() / store_key(full_identity, self.preprocess)).is_dir() or limit is None:
            identity = full_identity
        else:
            identity = {**base_identity, "rows": f"first-{limit}"}

        def load() -> tuple[Any, list[int]]:
            dataset = self._split(task, hub_split)
            indices = None
            if split != "test":
                train, validation = data.validation_indices(len(dataset))
                indices = train if split == "train" else validation
            elif identity["rows"] != "all":
                indices = np.arange(len(dataset))
            if indices is not None and identity["rows"] != "all":
                indices = indices[:limit]
            return data.image_rows(dataset, spec, indices)

        store = cached_store(
            identity,
            self.preprocess,
            load,
            progress=self.context.progress,
            desc=f"{task}/{split}: decode",
        )
        store.meta["full"] = identity["rows"] == "all"
        self._stores[(task, split)] = store
        return store


@register_suite("vit8", params=PARAMS, reference="https://arxiv.org/abs/2212.04089")
class Vit8(ClipVisionSuite):
    """CLIP 8 tasks (SUN397, Cars, RESISC45, EuroSAT, SVHN, GTSRB, MNIST, DTD)."""

    tasks = data.VIT8
    published: ClassVar = PUBLISHED_VIT8


@register_suite("vit14", params=PARAMS, reference="https://arxiv.org/abs/2405.07813")
class Vit14(ClipVisionSuite):
    """CLIP 14 tasks: vit8 + Flowers102, PCAM, FER2013, Oxford-IIIT Pet, STL10, CIFAR100."""

    tasks = data.VIT14


@register_suite("vit20", params=PARAMS, reference="https://arxiv.org/abs/2405.07813")
class Vit20(ClipVisionSuite):
    """CLIP 20 tasks: vit14 + CIFAR10, Food101, Fashion-MNIST, EMNIST, KMNIST, SST2."""

    tasks = data.VIT20
