"""zoo-imagenet: SFDA's group-1 zoo (11 torchvision ImageNet models) × its 11 targets.

Ground truth is *published*, not recomputed: the fine-tuned accuracies of SFDA's
``tw_group1.py`` (``tasks/transferability/sfda_group1.py``), so the τ_w measured here
compare with the papers' on the same numbers; the record says so
(``suite.summary.ground_truth_protocol``). Source facts are torchvision's ImageNet top-1
and parameter counts, so the target-blind baselines run with nothing downloaded.

Feature-based estimators need the models and the target images, resolved through
``harness.weights.hub.resolve_all`` (``--mirror DIR`` or the hub): weights as
safetensors under ``DIR/models/torchvision/<name>/`` (a torchvision state dict, the
ImageNet classifier included; ``harness``'s mirror layout), images under
``DIR/datasets/<id>/`` (image + integer label columns). Features are the classifier's
input (penultimate layer) on the target's training images, resized to 256 and centre-
cropped to 224 with ImageNet normalisation (SFDA's ``forward_feature``); the source
probabilities are the model's own 1,000-way softmax. Both are cached once per (model,
target) under the harness cache. VOC2007 has no single-label hub copy the harness reads,
so only the target-blind baselines cover it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from harness.cache import atomic_path, cache_dir, content_key, file_sha256
from harness.errors import HarnessError
from harness.progress import progress_bar
from harness.registry import Param, register_suite
from harness.suite import Artifact, Published
from harness.transferability.inputs import TargetInputs
from harness.transferability.zoo import GroundTruth, ZooSuite
from harness.weights.hub import Requirement, resolve_all
from tasks.transferability import sfda_group1 as published

SFDA_PAPER = "https://arxiv.org/abs/2207.03036"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class ImageTarget:
    """Where a target's training images live on the hub (or in the mirror)."""

    dataset: str | None  # None: no single-label hub copy the harness reads
    split: str = "train"
    image_column: str = "image"
    label_column: str = "label"


TARGETS: dict[str, ImageTarget] = {
    "aircraft": ImageTarget("HuggingFaceM4/FGVC-Aircraft", label_column="variant"),
    "caltech101": ImageTarget("Donghyun99/Caltech-101"),
    "cars": ImageTarget("tanganke/stanford_cars"),
    "cifar10": ImageTarget("tanganke/cifar10"),
    "cifar100": ImageTarget("tanganke/cifar100"),
    "dtd": ImageTarget("tanganke/dtd"),
    "flowers": ImageTarget("dpdl-benchmark/oxford_flowers102"),
    "food": ImageTarget("ethz/food101"),
    "pets": ImageTarget("timm/oxford-iiit-pet"),
    "sun397": ImageTarget("tanganke/sun397"),
    "voc2007": ImageTarget(None),
}

PUBLISHED = [
    Published(
        method,
        float(np.mean(values)),
        SFDA_PAPER,
        "published:sfda-group1",
        per_task=dict(zip(published.TARGETS, values, strict=True)),
        note="group-1 τ_w as REFERENCE.md gives them (SFDA's table; LogME as SFDA reports it)",
    )
    for method, values in published.PUBLISHED_TAU_W.items()
]

PARAMS = {
    "models": Param("", "comma-separated subset of the 11 models (empty: all)"),
    "examples": Param(0, "training images per target the estimators see (0: all)", low=0),
    "batch_size": Param(64, "images per forward pass", low=1),
}


def fetch_command(name: str) -> str:
    """torchvision's weights are not a hub repository: download them with torchvision and
    save the state dict as safetensors in the mirror (``$MIRROR``: the mirror root)."""
    folder = f"$MIRROR/models/torchvision/{name}"
    code = (
        "import os, torchvision, safetensors.torch as st; "
        f"m = torchvision.models.get_model('{name}', weights='IMAGENET1K_V1'); "
        f"os.makedirs('{folder}', exist_ok=True); "
        "st.save_file({k: v.contiguous() for k, v in m.state_dict().items()}, "
        f"'{folder}/model.safetensors')"
    )
    return f'python -c "{code}"'


def build_torchvision(name: str, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """The torchvision architecture ``name`` with ``state`` loaded (auxiliary heads of
    GoogLeNet / Inception v3, unused at inference, are dropped), in eval mode."""
    import torchvision

    options = {}
    if name in ("googlenet", "inception_v3"):
        options = {"aux_logits": False, "init_weights": False, "transform_input": True}
    model = torchvision.models.get_model(name, weights=None, **options)
    kept = OrderedDict(
        (k, v) for k, v in state.items() if not k.startswith(("AuxLogits.", "aux1.", "aux2."))
    )
    # safetensors keeps no module versions; torchvision's current ones are those of its
    # released weights (MNASNet refuses a state dict without one)
    kept._metadata = model.state_dict()._metadata  # type: ignore[attr-defined]
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if missing or unexpected:
        wrong = (missing or unexpected)[0]
        raise HarnessError(
            f"torchvision/{name}'s weights do not fit torchvision's {name} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. {wrong}); "
            "save the torchvision state dict of that model as model.safetensors"
        )
    return model.eval()


def classifier(model: torch.nn.Module, name: str) -> torch.nn.Linear:
    """The final ImageNet classifier, whose input is the feature (SFDA's hook)."""
    if name.startswith(("mobilenet", "mnasnet")):
        return model.classifier[-1]
    if name.startswith("densenet"):
        return model.classifier
    return model.fc


def preprocess(image: object) -> torch.Tensor:
    """Resize the shorter side to 256, centre-crop 224, ImageNet-normalise (1×3×224×224)."""
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.open(image)
    picture = picture.convert("RGB")
    width, height = picture.size
    scale = 256 / min(width, height)
    picture = picture.resize((round(width * scale), round(height * scale)), Image.BILINEAR)
    width, height = picture.size
    left, top = (width - 224) // 2, (height - 224) // 2
    picture = picture.crop((left, top, left + 224, top + 224))
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
    return (pixels.permute(2, 0, 1).unsqueeze(0) - MEAN) / STD


@torch.no_grad()
def extract(
    model: torch.nn.Module, name: str, images: list, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, softmax over the 1,000 ImageNet classes) of ``images``."""
    captured: list[torch.Tensor] = []
    hook = classifier(model, name).register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach().cpu())
    )
    model = model.to(device)
    probs = []
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.cat([preprocess(image) for image in images[start : start + batch_size]])
            probs.append(torch.softmax(model(batch.to(device)).double(), dim=1).cpu())
    finally:
        hook.remove()
    return torch.cat(captured), torch.cat(probs)


@register_suite(
    "zoo-imagenet",
    params=PARAMS,
    reference=SFDA_PAPER,
    description="SFDA group-1 zoo: 11 torchvision ImageNet models, 11 targets, published truth.",
)
class ZooImagenet(ZooSuite):
    """SFDA's group-1 zoo (11 torchvision ImageNet models) × 11 targets, published
    fine-tuned accuracies as ground truth."""

    tasks = list(published.TARGETS)
    published = PUBLISHED

    @property
    def checkpoint_set(self) -> str:
        return "published:sfda-group1"

    def prepare(self) -> None:
        chosen = [m.strip() for m in str(self.context.options.get("models", "")).split(",")]
        chosen = [m for m in chosen if m]
        unknown = [m for m in chosen if m not in published.MODELS]
        if unknown:
            raise HarnessError(
                f"zoo-imagenet has no model {unknown[0]!r}; its models: "
                f"{', '.join(published.MODELS)}"
            )
        if len(chosen) == 1:
            raise HarnessError("zoo-imagenet ranks a zoo: give at least two models")
        self.models = chosen or list(published.MODELS)
        self._inputs: dict[tuple[str, str], TargetInputs] = {}
        self._resolved: dict[str, object] = {}

    def sources(self, target: str) -> list[str]:
        return list(self.models)

    def source_facts(self, source: str, target: str) -> dict[str, float]:
        return {
            "accuracy": published.IMAGENET_TOP1[source],
            "parameters": float(published.PARAMETERS[source]),
        }

    def ground_truth(self, target: str) -> Mapping[str, GroundTruth]:
        accuracies = published.FINETUNED[target]
        config = {"source": "SFDA tw_group1.py (published)"}
        return {m: GroundTruth(accuracies[m], accuracies[m], config) for m in self.models}

    def evaluation_summary(self) -> Mapping[str, object]:
        return {
            "ground_truth_protocol": {
                "ground_truth": "published",
                "source": "https://github.com/TencentARC/SFDA/blob/main/tw_group1.py",
                "protocol": "SFDA: 20-point lr x wd grid, SGD Nesterov, cosine, 5,000 "
                "steps, best on validation (the validation column repeats the test one)",
                "models": list(self.models),
            }
        }

    def target_inputs(self, source: str, target: str) -> TargetInputs:
        if (source, target) not in self._inputs:
            self._inputs[(source, target)] = self._extract(source, target)
        return self._inputs[(source, target)]

    def _requirements(self, source: str, target: str) -> tuple[Requirement, Requirement]:
        spec = TARGETS[target]
        if spec.dataset is None:
            raise HarnessError(
                f"zoo-imagenet reads no images for {target!r} (no single-label hub copy); "
                "leave it out with --only, or run a target-blind baseline"
            )
        return (
            Requirement(f"torchvision/{source}", "models", fetch=fetch_command(source)),
            Requirement(spec.dataset, "datasets"),
        )

    def _extract(self, source: str, target: str) -> TargetInputs:
        model_artifact, data_artifact = resolve_all(
            self._requirements(source, target),
            mirror=self.context.mirror,
            needed_by=f"zoo-imagenet features of {source} on {target}",
        )
        self._resolved[f"source:{source}"] = model_artifact
        self._resolved[f"dataset:{target}"] = data_artifact
        examples = int(self.context.options.get("examples", 0))
        key = content_key(
            "zoo-imagenet", source, target, examples,
            model_artifact.revision or str(model_artifact.path),
            data_artifact.revision or str(data_artifact.path),
        )  # fmt: skip
        path = Path(self.context.cache_dir or cache_dir()) / "zoo-imagenet" / key / "inputs.st"
        if not path.is_file():
            spec = TARGETS[target]
            images, labels = _training_images(data_artifact.path, spec, examples)
            weights = _weights_file(model_artifact.path, source)
            model = build_torchvision(source, load_file(str(weights)))
            features, probs = extract(
                model, source, images, int(self.context.options.get("batch_size", 64)),
                self.context.device,
            )  # fmt: skip
            tensors = {"features": features, "labels": labels, "source_probs": probs}
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temporary:
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary))
        tensors = load_file(str(path))
        return TargetInputs(
            tensors["features"].double().numpy(),
            tensors["labels"].numpy(),
            tensors["source_probs"].double().numpy(),
            self.source_facts(source, target),
        )

    def artifacts(self) -> list[Artifact]:
        """The published tables (shipped with the harness: hashed) and every model and
        dataset that features were extracted from in this run."""
        table = file_sha256(Path(published.__file__))
        shipped = [
            Artifact("ground_truth", "TencentARC/SFDA:tw_group1.py", "package", sha256=table),
            Artifact("source_facts", "torchvision:IMAGENET1K_V1", "package", sha256=table),
        ]
        return shipped + [Artifact.of(role, art) for role, art in sorted(self._resolved.items())]


def _weights_file(path: Path, name: str) -> Path:
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    if not files:
        raise HarnessError(
            f"torchvision/{name} at {path} has no .safetensors file; save the torchvision "
            "state dict as model.safetensors there"
        )
    return files[0]


def _training_images(path: Path, spec: ImageTarget, examples: int) -> tuple[list, torch.Tensor]:
    """The training split's images (decoded lazily by PIL) and labels; with ``examples``,
    a fixed-seed subset of that many."""
    import datasets

    try:
        dataset = datasets.load_dataset(str(path), split=spec.split)
    except (ValueError, FileNotFoundError) as error:
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise HarnessError(
            f"dataset {spec.dataset!r} at {path} has no readable split {spec.split!r} "
            f"({reason}); download it again"
        ) from None
    for column in (spec.image_column, spec.label_column):
        if column not in dataset.column_names:
            raise HarnessError(
                f"dataset {spec.dataset!r} has no column {column!r} (its columns: "
                f"{', '.join(dataset.column_names)}); it is not the copy zoo-imagenet reads"
            )
    if examples and examples < len(dataset):
        order = np.random.default_rng(0).permutation(len(dataset))[:examples]
        dataset = dataset.select(sorted(order.tolist()))
    images = list(progress_bar(dataset[spec.image_column], desc=f"{spec.dataset} images"))
    labels = torch.tensor([int(label) for label in dataset[spec.label_column]])
    return images, labels
