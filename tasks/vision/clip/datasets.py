"""The 20 CLIP image-classification tasks: hub datasets, splits, class names, label checks.

Every dataset is resolved with :mod:`harness.weights.hub` (hub or mirror) and read with
``datasets.load_dataset(<snapshot dir>, config, split=...)``: one call for both. The
validation split used for hyperparameter selection is a fixed-seed 10% of train; ``train``
for methods is the other 90%, so selection never sees data a method trained on.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.splits import VALIDATION_FRACTION as VALIDATION_FRACTION  # re-exported
from harness.splits import VALIDATION_SEED as VALIDATION_SEED
from harness.splits import validation_indices as validation_indices


class LabelOrderError(HarnessError):
    """A dataset's label names do not match the class-name list the head is built from."""


@dataclass(frozen=True)
class ClipTask:
    """One task: its name in the suite, where its data and experts live, its prompts."""

    name: str  # suite task name (also the JSON key)
    dataset: str  # hub dataset id
    expert: str  # suffix of the tanganke expert repo
    open_clip_expert: str  # task name in the original task-vectors release
    config: str | None = None
    test_split: str = "test"
    train_split: str = "train"
    image_column: str = "image"
    label_column: str = "label"
    aliases: dict[str, str] = field(default_factory=dict)  # dataset label → class name


TASKS: dict[str, ClipTask] = {
    task.name: task
    for task in [
        ClipTask("sun397", "tanganke/sun397", "sun397", "SUN397"),
        ClipTask("stanford_cars", "tanganke/stanford_cars", "stanford-cars", "Cars"),
        ClipTask("resisc45", "tanganke/resisc45", "resisc45", "RESISC45"),
        ClipTask(
            "eurosat",
            "tanganke/eurosat",
            "eurosat",
            "EuroSAT",
            aliases={
                "annualcrop": "annual crop land",
                "herbaceousvegetation": "brushland or shrubland",
                "highway": "highway or road",
                "industrial": "industrial buildings or commercial buildings",
                "pasture": "pasture land",
                "permanentcrop": "permanent crop land",
                "residential": "residential buildings or homes or apartments",
                "sealake": "lake or sea",
            },
        ),
        ClipTask("svhn", "ufldl-stanford/svhn", "svhn", "SVHN", config="cropped_digits"),
        ClipTask("gtsrb", "tanganke/gtsrb", "gtsrb", "GTSRB"),
        ClipTask("mnist", "ylecun/mnist", "mnist", "MNIST"),
        ClipTask("dtd", "tanganke/dtd", "dtd", "DTD"),
        ClipTask(
            "oxford_flowers102",
            "dpdl-benchmark/oxford_flowers102",
            "oxford_flowers102",
            "Flowers102",
        ),
        ClipTask("pcam", "1aurent/PatchCamelyon", "pcam", "PCAM"),
        ClipTask(
            "fer2013",
            "clip-benchmark/wds_fer2013",
            "fer2013",
            "FER2013",
            image_column="jpg",
            label_column="cls",
        ),
        ClipTask("oxford_iiit_pet", "timm/oxford-iiit-pet", "oxford-iiit-pet", "OxfordIIITPet"),
        ClipTask("stl10", "tanganke/stl10", "stl10", "STL10"),
        ClipTask("cifar100", "tanganke/cifar100", "cifar100", "CIFAR100"),
        ClipTask("cifar10", "tanganke/cifar10", "cifar10", "CIFAR10"),
        ClipTask("food101", "ethz/food101", "food101", "Food101", test_split="validation"),
        ClipTask(
            "fashion_mnist", "zalando-datasets/fashion_mnist", "fashion_mnist", "FashionMNIST"
        ),
        ClipTask("emnist_letters", "tanganke/emnist_letters", "emnist_letters", "EMNIST"),
        ClipTask("kmnist", "tanganke/kmnist", "kmnist", "KMNIST"),
        ClipTask("rendered_sst2", "nateraw/rendered-sst2", "rendered-sst2", "RenderedSST2"),
    ]
}

VIT8 = ["sun397", "stanford_cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]
VIT14 = VIT8 + ["oxford_flowers102", "pcam", "fer2013", "oxford_iiit_pet", "stl10", "cifar100"]
VIT20 = VIT14 + ["cifar10", "food101", "fashion_mnist", "emnist_letters", "kmnist", "rendered_sst2"]


@lru_cache(maxsize=1)
def prompts() -> dict[str, Any]:
    """Class names (label-id order) and templates; ships as package data."""
    text = resources.files("tasks.vision.clip").joinpath(
        "data/clip_zeroshot_classnames_templates.json"
    )
    return json.loads(text.read_text(encoding="utf-8"))


def classnames(task: str) -> list[str]:
    return list(prompts()[task]["classnames"])


def templates(task: str) -> list[str]:
    return list(prompts()[task]["templates"])


# ---------------------------------------------------------------------------- label check
def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", str(text))
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # AnnualCrop → Annual Crop
    return re.sub(r"[^0-9a-z\u0080-\uffff]+", "", text.lower())


def _same(label: str, classname: str, aliases: dict[str, str]) -> bool:
    a, b = _norm(label), _norm(classname)
    if a == b or _norm(aliases.get(a, "")) == b:
        return True
    return len(a) >= 4 and len(b) >= 4 and (a in b or b in a)


def check_label_names(
    task: ClipTask, dataset_names: list[str] | None, names: list[str], where: str
) -> None:
    """Fail when the dataset's label names are not the class names, in order.

    Wording may differ (``AnnualCrop`` vs ``annual crop land``: normalised containment or
    a per-task alias); a different count, a permutation or an unrelated name fails.
    """
    if dataset_names is None:
        return
    fix = "fix the class-name list or the dataset, or pass --suite-set check_labels=false"
    if len(dataset_names) != len(names):
        raise LabelOrderError(
            f"{where}: the dataset has {len(dataset_names)} classes but the class-name list "
            f"of {task.name!r} has {len(names)}; {fix}"
        )
    for index, (label, classname) in enumerate(zip(dataset_names, names)):
        if not _same(label, classname, task.aliases):
            moved = next(
                (i for i, other in enumerate(names) if _same(label, other, task.aliases)), None
            )
            detail = f" (the list has it at {moved})" if moved is not None else ""
            raise LabelOrderError(
                f"{where}: label {index} is {label!r} but the class-name list of "
                f"{task.name!r} has {classname!r} there{detail}; {fix}"
            )


# ---------------------------------------------------------------------------- loading
def load_split(path: Path, task: ClipTask, split: str) -> Any:
    """The hub split (``test``/``train`` names of the task) of the dataset snapshot."""
    import datasets

    try:
        return datasets.load_dataset(str(path), task.config, split=split)
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise HarnessError(
            f"dataset {task.dataset!r} at {path} has no readable split {split!r} "
            f"({reason}); download it again"
        ) from None


def label_names(dataset: Any, task: ClipTask) -> list[str] | None:
    feature = dataset.features.get(task.label_column)
    names = getattr(feature, "names", None)
    return list(names) if names else None


class Column:
    """A lazy, sliceable column of a dataset (for threaded store builds)."""

    def __init__(self, dataset: Any, column: str) -> None:
        self.dataset = dataset
        self.column = column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, rows: slice) -> list[Any]:
        return list(self.dataset[rows][self.column])


def image_rows(dataset: Any, task: ClipTask, indices: np.ndarray | None) -> tuple[Column, list]:
    """(images as undecoded bytes, labels) of the selected rows."""
    from datasets import Image

    if indices is not None:
        dataset = dataset.select(indices.tolist())
    if isinstance(dataset.features.get(task.image_column), Image):
        dataset = dataset.cast_column(task.image_column, Image(decode=False))
    labels = [int(label) for label in dataset[task.label_column]]
    return Column(dataset, task.image_column), labels
