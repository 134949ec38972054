"""``harness bench eval``: the fast evaluation path against a plain one, in the same run.

Both score the same synthetic images (JPEG-encoded, 256 × 256 source, the real input
size after preprocessing) with a CLIP image encoder of the real architecture (random
weights: speed does not depend on them) and a zero-shot head.

- plain: ``DataLoader`` over a PIL dataset (decode, resize, crop, ToTensor, Normalize in
  workers), fp32, batch 128; what an evaluation script usually does.
- fast: the cached uint8 tensor store (built once beforehand, not timed: the cache is
  warm), normalisation on the device, bf16 autocast on CUDA, large batches, copies
  overlapped with compute (:mod:`harness.evaluation.fast`).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.evaluation.fast import DeviceFeeder, default_batch_size, resolve_dtype
from harness.evaluation.tensor_store import Preprocess, TensorStore, build_store

VIT8_TEST_IMAGES = 88_000  # about the size of the eight vit8 test sets together

ARCH_CONFIGS: dict[str, dict[str, int]] = {
    "vit-b-32": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        patch_size=32,
        projection_dim=512,
    ),
    "vit-b-16": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        patch_size=16,
        projection_dim=512,
    ),
    "vit-l-14": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        patch_size=14,
        projection_dim=768,
    ),
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        patch_size=32,
        projection_dim=16,
    ),
}


@dataclass
class BenchResult:
    arch: str
    device: str
    images: int
    plain_images_per_s: float
    fast_images_per_s: float
    store_build_s: float
    fast_dtype: str
    fast_batch_size: int

    @property
    def ratio(self) -> float:
        return self.fast_images_per_s / self.plain_images_per_s

    def lines(self) -> list[str]:
        projected = VIT8_TEST_IMAGES / self.fast_images_per_s
        return [
            f"arch {self.arch} on {self.device}, {self.images} synthetic images (224x224 input)",
            f"plain  DataLoader+PIL, fp32, batch 128: {self.plain_images_per_s:10.1f} images/s",
            f"fast   tensor store, {self.fast_dtype}, batch {self.fast_batch_size}: "
            f"{self.fast_images_per_s:10.1f} images/s",
            f"speed-up: {self.ratio:.1f}x  (store build, once: {self.store_build_s:.1f}s)",
            f"projected vit8 test sets ({VIT8_TEST_IMAGES} images), warm cache: {projected:.1f}s",
        ]


def synthetic_images(count: int, size: int = 256, seed: int = 0) -> list[bytes]:
    """Smooth random colour images, JPEG-encoded like most hub image datasets."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def bench_model(arch: str) -> torch.nn.Module:
    """A CLIP image encoder of ``arch`` (random weights), normalised embeddings out."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(image_size=224, **ARCH_CONFIGS[arch])
    model = CLIPVisionModelWithProjection(config).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            embeds = self.model(pixel_values=pixel_values).image_embeds
            return torch.nn.functional.normalize(embeds, dim=-1)

    return Encoder().eval()


class _PilDataset(torch.utils.data.Dataset):
    def __init__(self, images: list[bytes], preprocess: Preprocess) -> None:
        from torchvision import transforms

        self.images = images
        self.transform = transforms.Compose(
            [
                transforms.Resize(
                    preprocess.size, interpolation=transforms.InterpolationMode.BICUBIC
                ),
                transforms.CenterCrop(preprocess.size),
                transforms.ToTensor(),
                transforms.Normalize(preprocess.mean, preprocess.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = Image.open(io.BytesIO(self.images[index])).convert("RGB")
        return self.transform(image), index % 10


@torch.no_grad()
def run_plain(
    model: torch.nn.Module,
    head: torch.Tensor,
    images: list[bytes],
    preprocess: Preprocess,
    device: torch.device,
    workers: int,
) -> float:
    loader = torch.utils.data.DataLoader(
        _PilDataset(images, preprocess),
        batch_size=128,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    model = model.float().to(device)
    head = head.float().to(device)
    _sync(device)
    start = time.perf_counter()
    correct = 0
    for inputs, labels in loader:
        logits = model(inputs.to(device)) @ head.T
        correct += int((logits.argmax(-1).cpu() == labels).sum())
    _sync(device)
    return len(images) / (time.perf_counter() - start)


@torch.no_grad()
def run_fast(
    model: torch.nn.Module,
    head: torch.Tensor,
    store: TensorStore,
    preprocess: Preprocess,
    device: torch.device,
    dtype: torch.dtype,
    batch_size: int,
) -> float:
    model = model.to(device)
    autocast = dtype != torch.float32
    warm = DeviceFeeder(
        store, preprocess, device, batch_size=batch_size, limit=min(len(store), batch_size)
    )
    for images, _ in warm:  # first-call setup (kernels, allocator) is not throughput
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            model(images)
    _sync(device)
    start = time.perf_counter()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for images, labels in DeviceFeeder(store, preprocess, device, batch_size=batch_size):
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            logits = model(images) @ head.to(device, dtype if autocast else torch.float32).T
        correct += (logits.argmax(-1) == labels).sum()
    int(correct)
    _sync(device)
    return len(store) / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_eval(
    arch: str = "vit-b-32",
    images: int = 4096,
    device: str | torch.device = "cuda",
    *,
    workers: int | None = None,
    dtype: str = "auto",
    batch_size: int = 0,
    scratch: Path | None = None,
) -> BenchResult:
    """Measure plain and fast evaluation on the same images; see the module docstring."""
    device = torch.device(device)
    torch.manual_seed(0)
    preprocess = Preprocess(size=224)
    data = synthetic_images(images)
    model = bench_model(arch)
    head = torch.nn.functional.normalize(
        torch.randn(10, ARCH_CONFIGS[arch]["projection_dim"]), dim=-1
    )
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        tick = time.perf_counter()
        build_store(
            Path(directory) / "store",
            data,
            [i % 10 for i in range(images)],
            preprocess,
            identity={"bench": images},
            progress=False,
        )
        build_s = time.perf_counter() - tick
        store = TensorStore(Path(directory) / "store")
        fast_dtype = resolve_dtype(dtype, device)
        size = batch_size or default_batch_size(device)
        fast = run_fast(model, head, store, preprocess, device, fast_dtype, size)
        del store
    plain = run_plain(model, head, data, preprocess, device, workers)
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return BenchResult(arch, str(device), images, plain, fast, build_s, names[fast_dtype], size)


def describe(result: BenchResult) -> dict[str, Any]:
    return {**result.__dict__, "ratio": result.ratio}
