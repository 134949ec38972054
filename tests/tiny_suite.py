"""A three-task suite on a tiny CLIP vision tower, built in about a second.

It exercises the exact contracts a real suite has (a streaming pool over safetensors
files, a backbone whose parameter names are the pool's names, frozen heads, labelled
train / validation / test splits), so runner, contract and method tests drive real code
without the minutes mini8 takes to build.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.cache import cached_directory, content_key, file_sha256
from harness.suite import Artifact, ClassificationSuite
from harness.weights.pool import Checkpoint, ExpertPool

CONFIG = dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=8,
    patch_size=4,
    num_channels=3,
)
CLASSES = {"a": 3, "b": 4, "c": 5}
SIZES = {"train": 96, "validation": 48, "test": 64}


class TinyBackbone(CLIPVisionModel):
    """CLIP's vision tower returning pooled features; parameter names are the pool's."""

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(pixel_values=pixel_values).pooler_output


def new_backbone(seed: int) -> TinyBackbone:
    torch.manual_seed(seed)
    return TinyBackbone(CLIPVisionConfig(**CONFIG)).eval()


def _task_data(task: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(sum(map(ord, task)))
    prototypes = torch.randn(CLASSES[task], 3, 8, 8, generator=generator)
    splits = {}
    for split, size in SIZES.items():
        labels = torch.randint(0, CLASSES[task], (size,), generator=generator)
        images = prototypes[labels] + 0.8 * torch.randn(size, 3, 8, 8, generator=generator)
        splits[split] = (images, labels)
    return splits


def _head(task: str) -> torch.nn.Linear:
    torch.manual_seed(1000 + CLASSES[task])
    return torch.nn.Linear(CONFIG["hidden_size"], CLASSES[task])


class TinySuite(ClassificationSuite):
    tasks = list(CLASSES)
    # roles for compositions (layer_swap): the contract runs every method here
    provides = ClassificationSuite.provides | {"roles"}
    roles = {"math": "a", "language": "b"}

    def prepare(self) -> None:
        self.data = {task: _task_data(task) for task in CLASSES}
        self.heads = {task: _head(task).eval() for task in CLASSES}
        key = content_key("tiny-suite", CONFIG, SIZES, 1)
        self.root = cached_directory(key, self._build, namespace="tiny-suite")

    def _build(self, directory: Path) -> None:
        base = new_backbone(0)
        save_file(base.state_dict(), str(directory / "base.safetensors"))
        for task in CLASSES:
            expert = new_backbone(0)
            head = _head(task)
            optimizer = torch.optim.Adam(expert.parameters(), lr=3e-3)
            images, labels = _task_data(task)["train"]
            for _ in range(15):
                loss = torch.nn.functional.cross_entropy(head(expert(images)), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            state = {name: tensor.contiguous() for name, tensor in expert.state_dict().items()}
            save_file(state, str(directory / f"{task}.safetensors"))

    def pool(self) -> ExpertPool:
        return ExpertPool(
            Checkpoint(self.root / "base.safetensors", "tiny/base"),
            {
                task: Checkpoint(self.root / f"{task}.safetensors", f"tiny/{task}")
                for task in self.tasks
            },
        )

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        model = TinyBackbone(CLIPVisionConfig(**CONFIG))
        model.load_state_dict(dict(state), strict=True)
        return model.eval()

    def head(self, task: str) -> torch.nn.Module:
        return self.heads[task]

    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.data[task][split]
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        for start in range(0, len(labels), batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]

    def artifacts(self) -> list[Artifact]:
        return built_artifacts(self.root, "tiny", self.tasks)


def built_artifacts(root: Path, prefix: str, tasks: list[str]) -> list[Artifact]:
    """Identities of a test suite's built checkpoints: ``root/{base,<task>}.safetensors``."""
    return [
        Artifact(
            "base" if name == "base" else f"expert:{name}",
            f"{prefix}/{name}",
            "built",
            sha256=file_sha256(root / f"{name}.safetensors"),
        )
        for name in ["base", *tasks]
    ]
