"""Tensor store and fast evaluation: round trips, normalisation, caching, same accuracy."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from harness.evaluation.classification import classification_accuracy
from harness.evaluation.fast import DeviceFeeder, fast_accuracy, resolve_dtype
from harness.evaluation.tensor_store import Preprocess, TensorStore, build_store, cached_store


def images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        height, width = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        mode_gray = index % 3 == 0
        shape = (height, width) if mode_gray else (height, width, 3)
        out.append(Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)))
    return out


def torchvision_pixels(image: Image.Image, size: int) -> torch.Tensor:
    preprocess = Preprocess(size=size)
    transform = transforms.Compose(
        [
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(preprocess.mean, preprocess.std),
        ]
    )
    return transform(image.convert("RGB"))


def test_store_round_trips_images_and_labels(tmp_path):
    pictures = images(7)
    preprocess = Preprocess(size=32)
    encoded = []
    for picture in pictures:  # bytes and {"bytes"} rows decode the same as PIL images
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    rows = [pictures[0], encoded[1], {"bytes": encoded[2], "path": None}, *pictures[3:]]
    build_store(
        tmp_path / "s", rows, [3, 1, 4, 1, 5, 9, 2], preprocess, identity={"t": 1}, progress=False
    )
    store = TensorStore(tmp_path / "s")
    assert len(store) == 7 and store.images.dtype == np.uint8
    assert store.images.shape == (7, 3, 32, 32)
    for index, picture in enumerate(pictures):
        assert np.array_equal(store.images[index], preprocess(picture))
    assert store.labels.tolist() == [3, 1, 4, 1, 5, 9, 2]
    batches = list(store.batches(3, preprocess=preprocess))
    assert [len(labels) for _, labels in batches] == [3, 3, 1]
    for index, picture in enumerate(pictures):  # device normalisation == torchvision's
        expected = torchvision_pixels(picture, 32)
        assert torch.allclose(batches[index // 3][0][index % 3], expected, atol=1e-5)


def test_cached_store_builds_once_and_keys_by_identity(tmp_path):
    calls = []

    def load():
        calls.append(1)
        return images(3), [0, 1, 2]

    first = cached_store({"dataset": "x", "rev": "a"}, Preprocess(size=16), load, progress=False)
    again = cached_store({"dataset": "x", "rev": "a"}, Preprocess(size=16), load, progress=False)
    assert first.path == again.path and len(calls) == 1
    other = cached_store({"dataset": "x", "rev": "b"}, Preprocess(size=16), load, progress=False)
    resized = cached_store({"dataset": "x", "rev": "a"}, Preprocess(size=24), load, progress=False)
    assert len({first.path, other.path, resized.path}) == 3 and len(calls) == 3


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_fast_accuracy_equals_the_plain_loop(tmp_path):
    preprocess = Preprocess(size=16)
    pictures = images(23, seed=1)
    labels = [int(i) for i in np.random.default_rng(2).integers(0, 5, 23)]
    build_store(tmp_path / "s", pictures, labels, preprocess, identity={}, progress=False)
    store = TensorStore(tmp_path / "s")
    model, head = Toy(), torch.nn.Linear(8, 5)
    plain = [(torchvision_pixels(p, 16)[None], torch.tensor([y])) for p, y in zip(pictures, labels)]
    expected = classification_accuracy(model, head, plain, progress=False)
    cpu = torch.device("cpu")
    for batch_size in (4, 256):
        got = fast_accuracy(model, head, store, preprocess, device=cpu, batch_size=batch_size)
        assert got == pytest.approx(expected)
    limited = fast_accuracy(model, head, store, preprocess, device=cpu, batch_size=5, limit=7)
    assert limited["n"] == 7
    assert sum(len(y) for _, y in DeviceFeeder(store, preprocess, cpu, batch_size=5)) == 23
    assert resolve_dtype("auto", cpu) == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_feeder_overlaps_copies_and_matches_cpu(tmp_path):
    preprocess = Preprocess(size=16)
    build_store(
        tmp_path / "s", images(50), list(range(50)), preprocess, identity={}, progress=False
    )
    store = TensorStore(tmp_path / "s")
    cuda = torch.device("cuda")
    got = torch.cat([x.cpu() for x, _ in DeviceFeeder(store, preprocess, cuda, batch_size=8)])
    want = torch.cat([x for x, _ in store.batches(8, preprocess=preprocess)])
    assert torch.allclose(got, want, atol=1e-5)
    model, head = Toy(), torch.nn.Linear(8, 5)
    fp32 = fast_accuracy(model, head, store, preprocess, device=torch.device("cpu"))
    on_cuda = fast_accuracy(
        model.cuda(), head, store, preprocess, device=cuda, dtype=torch.float32, batch_size=8
    )
    assert on_cuda == pytest.approx(fp32)


def test_floor_crop_matches_the_transformers_image_processor():
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(do_normalize=False, do_rescale=False)
    rng = np.random.default_rng(3)
    for shape in [(231, 400, 3), (225, 301, 3), (40, 29, 3)]:
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        expected = np.asarray(processor(images=image, return_tensors="np")["pixel_values"][0])
        ours = Preprocess(crop_rounding="floor")(image).astype(np.float32)
        assert np.abs(ours - expected).max() <= 1.0  # same pixels, ±1 from resize rounding
        shifted = Preprocess(crop_rounding="round")(image).astype(np.float32)
        assert shape[0] == 40 or np.abs(shifted - expected).max() > 1.0
