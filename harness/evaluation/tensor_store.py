"""Decoded, preprocessed images on disk: a uint8 memory map that evaluation reads directly.

Decoding JPEG/PNG and resizing with PIL costs far more than a ViT-B/32 forward pass on a
GPU, and it is the same work on every evaluation. A store does it once per (dataset
identity, split selection, preprocessing) and keeps ``uint8 [N, 3, S, S]`` plus int64
labels; normalisation happens on the device. Stores appear atomically under the cache
(``harness.cache.cached_directory``), so an interrupted build is never trusted.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.cache import cache_dir, cached_directory, content_key
from harness.progress import progress_bar

STORE_FORMAT = 1
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``size`` (bicubic), centre-crop ``size`` × ``size``, RGB.

    This is CLIP's evaluation transform (open_clip / torchvision ``Resize`` +
    ``CenterCrop``; transformers' ``CLIPImageProcessor`` differs only in rounding the crop
    offset down, ``crop_rounding="floor"``); mean/std normalisation is left to the device.
    """

    size: int = 224
    interpolation: str = "bicubic"
    crop_rounding: str = "round"  # "round": torchvision/open_clip; "floor": CLIPImageProcessor
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def key(self) -> dict[str, Any]:
        """What changes the stored bytes (mean/std do not: they are applied later)."""
        return {
            "size": self.size,
            "interpolation": self.interpolation,
            "crop": "center",
            "crop_rounding": self.crop_rounding,
        }

    def __call__(self, image: Any) -> np.ndarray:
        """PIL image (or encoded bytes) → uint8 array [3, size, size]."""
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        if isinstance(image, dict):  # datasets Image(decode=False): {"bytes", "path"}
            data = image.get("bytes")
            image = Image.open(io.BytesIO(data)) if data is not None else Image.open(image["path"])
        elif isinstance(image, bytes | bytearray):
            image = Image.open(io.BytesIO(image))
        image = image.convert("RGB")
        mode = InterpolationMode(self.interpolation)
        image = F.resize(image, self.size, interpolation=mode)
        width, height = image.size
        if self.crop_rounding == "floor":  # transformers' center_crop: (h - size) // 2
            top, left = (height - self.size) // 2, (width - self.size) // 2
            image = F.crop(image, top, left, self.size, self.size)
        else:
            image = F.center_crop(image, [self.size, self.size])
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)

    def normalizer(
        self, device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) with ``x_norm = x_uint8 * scale + shift``, shaped [1, 3, 1, 1]."""
        std = torch.tensor(self.std, dtype=torch.float32)
        mean = torch.tensor(self.mean, dtype=torch.float32)
        scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
        shift = (-mean / std).view(1, 3, 1, 1)
        return scale.to(device, dtype), shift.to(device, dtype)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] → float32 normalised pixels, on the images' device."""
        scale, shift = self.normalizer(images.device)
        return images.float().mul_(scale).add_(shift)


class TensorStore:
    """An opened store: ``images`` (uint8 memmap [N, 3, S, S]) and ``labels`` (int64 [N])."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = json.loads((self.path / "meta.json").read_text())
        count, size = int(self.meta["count"]), int(self.meta["size"])
        self.images = (
            np.memmap(
                self.path / "images.u8", dtype=np.uint8, mode="r", shape=(count, 3, size, size)
            )
            if count
            else np.zeros((0, 3, size, size), dtype=np.uint8)
        )
        self.labels = np.load(self.path / "labels.npy")

    def __len__(self) -> int:
        return int(self.meta["count"])

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def tensors(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A contiguous slice as (uint8 images, int64 labels) CPU tensors (copied)."""
        images = torch.from_numpy(np.array(self.images[start:stop]))
        return images, torch.from_numpy(self.labels[start:stop].astype(np.int64))

    def batches(
        self, batch_size: int, *, limit: int | None = None, preprocess: Preprocess | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) in stored order; normalised float32 when ``preprocess`` is given."""
        total = len(self) if limit is None else min(limit, len(self))
        for start in range(0, total, batch_size):
            images, labels = self.tensors(start, min(start + batch_size, total))
            yield (preprocess.normalize(images) if preprocess else images), labels


def build_store(
    target: Path,
    images: Sequence[Any],
    labels: Sequence[int],
    preprocess: Preprocess,
    *,
    identity: dict[str, Any],
    workers: int | None = None,
    progress: bool = True,
    desc: str = "decode",
) -> None:
    """Decode and preprocess ``images`` (PIL, bytes or {"bytes", "path"}) into ``target``.

    ``images`` only needs ``len()`` and slicing (``images[a:b]`` → list), so a lazy column
    of a large dataset is read chunk by chunk from several threads.
    """
    count, size = len(images), preprocess.size
    target.mkdir(parents=True, exist_ok=True)
    if count:
        array = np.memmap(
            target / "images.u8", dtype=np.uint8, mode="w+", shape=(count, 3, size, size)
        )
        workers = workers or min(16, os.cpu_count() or 1)
        chunk = 256
        starts = range(0, count, chunk)

        def fill(start: int) -> int:
            stop = min(start + chunk, count)
            for offset, image in enumerate(images[start:stop]):
                array[start + offset] = preprocess(image)
            return stop - start

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in progress_bar(
                pool.map(fill, starts), total=len(starts), desc=desc, enabled=progress
            ):
                pass
        array.flush()
        del array
    else:
        (target / "images.u8").write_bytes(b"")
    np.save(target / "labels.npy", np.asarray(labels, dtype=np.int64))
    meta = {
        "format": STORE_FORMAT,
        "count": count,
        "size": size,
        "preprocess": asdict(preprocess),
        "identity": identity,
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


def store_key(identity: dict[str, Any], preprocess: Preprocess) -> str:
    return content_key("tensor-store", STORE_FORMAT, identity, preprocess.key())


def cached_store(
    identity: dict[str, Any],
    preprocess: Preprocess,
    load: Any,
    *,
    progress: bool = True,
    desc: str = "decode",
) -> TensorStore:
    """The store for ``identity`` + ``preprocess``, built with ``load() -> (images, labels)``
    only when absent. ``identity`` must name the dataset revision (or content hash), the
    split and the selected rows."""
    key = store_key(identity, preprocess)

    def build(directory: Path) -> None:
        images, labels = load()
        build_store(
            directory, images, labels, preprocess, identity=identity, progress=progress, desc=desc
        )

    return TensorStore(cached_directory(key, build, namespace="tensor-store"))


def store_root() -> Path:
    return cache_dir() / "tensor-store"
