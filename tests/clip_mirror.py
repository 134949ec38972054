"""A hub mirror with tiny CLIP models in both checkpoint formats and tiny datasets of the
real schema (hub layout, column names, ClassLabel names and class counts), so the CLIP
suites run offline through exactly the code path a hub user takes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tasks.vision.clip import datasets as data

VOCAB_SIZE = 514


def _bytes_to_unicode() -> list[str]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = keep[:], 0
    for byte in range(256):
        if byte not in keep:
            keep.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tokenizer(target: Path) -> None:
    """A byte-level CLIP BPE vocabulary without merges: real tokenizer code, 514 tokens."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    scratch = target / "_tok"
    scratch.mkdir(parents=True)
    (scratch / "vocab.json").write_text(json.dumps(vocab))
    (scratch / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        vocab=str(scratch / "vocab.json"), merges=str(scratch / "merges.txt")
    ).save_pretrained(target)
    for file in scratch.iterdir():
        file.unlink()
    scratch.rmdir()


def tiny_clip_config():
    from transformers import CLIPConfig

    return CLIPConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=224,
            patch_size=32,
        ),
        text_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=VOCAB_SIZE,
            max_position_embeddings=77,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
        ),
        projection_dim=16,
    )


def save_transformers_models(
    root: Path, tasks: list[str], arch_prefix: str = "clip-vit-base-patch32"
) -> None:
    from transformers import CLIPModel, CLIPVisionModel

    torch.manual_seed(0)
    base = CLIPModel(tiny_clip_config())
    base_dir = root / "models" / f"openai/{arch_prefix}"
    base.save_pretrained(base_dir)
    write_tokenizer(base_dir)
    vision_state = {
        k.removeprefix("vision_model."): v
        for k, v in base.state_dict().items()
        if k.startswith("vision_model.")
    }
    for index, task in enumerate(tasks):
        expert = CLIPVisionModel(base.config.vision_config)
        generator = torch.Generator().manual_seed(100 + index)
        state = {
            k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
            for k, v in vision_state.items()
        }
        core = getattr(expert, "vision_model", expert)
        core.load_state_dict(state, strict=False)
        expert.save_pretrained(
            root / "models" / f"tanganke/{arch_prefix}_{data.TASKS[task].expert}"
        )


def dataset_label_names(task: str) -> list[str]:
    names = data.classnames(task)
    if task == "eurosat":  # the hub copy uses the short EuroSAT names
        return [
            "AnnualCrop",
            "Forest",
            "HerbaceousVegetation",
            "Highway",
            "Industrial",
            "Pasture",
            "PermanentCrop",
            "Residential",
            "River",
            "SeaLake",
        ]
    return names


def _image(rng: np.random.Generator, task: str) -> Image.Image:
    if task in ("mnist", "fashion_mnist", "kmnist", "emnist_letters"):
        return Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L")
    height, width = int(rng.integers(24, 64)), int(rng.integers(24, 64))
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def save_dataset(
    root: Path,
    task: str,
    *,
    test: int = 10,
    train: int = 20,
    label_names: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """Parquet shards in the hub layout with the real columns and ClassLabel names."""
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    spec = data.TASKS[task]
    names = label_names or dataset_label_names(task)
    target = root / "datasets" / spec.dataset
    folder = target / (spec.config or "data")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = Features(
        {spec.image_column: ImageFeature(), spec.label_column: ClassLabel(names=names)}
    )
    for split, count in ((spec.test_split, test), (spec.train_split, train)):
        rows = {
            spec.image_column: [_image(rng, task) for _ in range(count)],
            spec.label_column: [int(x) for x in rng.integers(0, len(names), count)],
        }
        Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet")
        )
    if spec.config:
        (target / "README.md").write_text(
            "---\nconfigs:\n"
            f"- config_name: {spec.config}\n  data_files:\n"
            f"  - split: {spec.test_split}\n    path: {spec.config}/{spec.test_split}-*\n"
            f"  - split: {spec.train_split}\n    path: {spec.config}/{spec.train_split}-*\n"
            "---\n"
        )
    return target


def build_mirror(root: Path, tasks: list[str]) -> Path:
    save_transformers_models(root, tasks)
    for index, task in enumerate(tasks):
        save_dataset(root, task, seed=index)
    return root
