"""The open_clip checkpoint set (the original task-vectors release) and `harness convert`:
pickled ImageEncoder files become safetensors only with --allow-pickle, then vit8 runs on
them through the mirror."""

from __future__ import annotations

import copy
import json
import os
import sys
import types

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from harness.cli import cli
from harness.errors import ArtifactNotFoundError, CheckpointError
from harness.weights.convert import convert_checkpoint
from tasks.vision.clip import datasets as data
from tests.clip_mirror import save_dataset

TASKS = ["svhn", "mnist"]
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "patch_size": 32, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_open_clip():
    from open_clip.model import CLIP

    torch.manual_seed(0)
    return CLIP(**TINY, quick_gelu=True).eval()


def pickled_image_encoder(model, path):
    """A whole pickled module of a class that will not be importable later, as the
    task-vectors release's ``src.modeling.ImageEncoder``."""
    module = types.ModuleType("tv_src_modeling")

    class ImageEncoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

    ImageEncoder.__module__ = module.__name__
    ImageEncoder.__qualname__ = "ImageEncoder"
    module.ImageEncoder = ImageEncoder
    sys.modules[module.__name__] = module
    try:
        torch.save(ImageEncoder(model), path)
    finally:
        del sys.modules[module.__name__]


@pytest.fixture(scope="module")
def open_clip_mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("oc")
    saved = os.environ.get("HF_DATASETS_CACHE")
    os.environ["HF_DATASETS_CACHE"] = str(root / "hf-datasets")
    mirror = root / "mirror"
    base = tiny_open_clip()
    base_dir = mirror / "models" / "timm/vit_base_patch32_clip_224.openai"
    base_dir.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in base.state_dict().items()},
        str(base_dir / "open_clip_model.safetensors"),
    )
    # timm's hub repos also ship a timm-format model.safetensors: it must be ignored
    save_file({"patch_embed.proj.weight": torch.zeros(2)}, str(base_dir / "model.safetensors"))
    (base_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY, "preprocess_cfg": {}})
    )
    sources = {}
    for index, task in enumerate(TASKS):
        expert = copy.deepcopy(base)
        generator = torch.Generator().manual_seed(index)
        with torch.no_grad():
            for parameter in expert.visual.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        del expert.transformer  # the release drops the text tower from ImageEncoder
        sources[task] = root / f"{task}_finetuned.pt"
        pickled_image_encoder(expert, sources[task])
        save_dataset(mirror, task, seed=index)
    yield mirror, sources
    if saved is None:
        os.environ.pop("HF_DATASETS_CACHE", None)
    else:
        os.environ["HF_DATASETS_CACHE"] = saved


def invoke(*args):
    return CliRunner().invoke(cli, list(args), standalone_mode=False, catch_exceptions=True)


def test_pickled_release_needs_the_explicit_flag(open_clip_mirror, tmp_path):
    _, sources = open_clip_mirror
    result = invoke("convert", "checkpoint", str(sources["svhn"]), str(tmp_path / "out"))
    assert isinstance(result.exception, CheckpointError)
    assert "--allow-pickle" in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_plain_state_dict_converts_without_the_flag(tmp_path):
    torch.save({"state_dict": {"visual.proj": torch.ones(2, 3)}}, tmp_path / "plain.pt")
    weights = convert_checkpoint(tmp_path / "plain.pt", tmp_path / "out")
    assert torch.equal(load_file(str(weights))["visual.proj"], torch.ones(2, 3))


def test_open_clip_set_runs_vit8_from_converted_release(open_clip_mirror, tmp_path):
    mirror, sources = open_clip_mirror
    only = ",".join(TASKS)
    args = [
        "eval",
        "--method",
        "individual",
        "--tasks",
        "vit8",
        "--only",
        only,
        "--suite-set",
        "checkpoints=open_clip",
        "--mirror",
        str(mirror),
        "--results",
        str(tmp_path / "results"),
        "--device",
        "cpu",
        "--quiet",
    ]
    missing = invoke(*args)
    assert isinstance(missing.exception, ArtifactNotFoundError)
    assert "harness convert checkpoint" in str(missing.exception)
    assert "ViT-B-32/SVHN/finetuned.pt" in str(missing.exception)
    for task in TASKS:
        target = mirror / "models" / f"task-vectors/ViT-B-32_{task}"
        result = invoke("convert", "checkpoint", str(sources[task]), str(target), "--allow-pickle")
        assert result.exception is None, result.output
        assert any(
            k.startswith("model.visual.") for k in load_file(str(target / "model.safetensors"))
        )
    result = invoke(*args)
    assert result.exception is None, result.output
    record = json.loads(next((tmp_path / "results").rglob("*.json")).read_text())
    assert record["suite"]["checkpoint_set"] == "open_clip:ViT-B-32:openai"
    assert record["suite"]["options"]["checkpoints"] == "open_clip"
    for task in TASKS:
        assert record["tasks"][task]["metric"] == pytest.approx(
            reference_accuracy(mirror, sources[task], task), abs=1e-6
        )


def reference_accuracy(mirror, source, task):
    """open_clip's own encode_image / encode_text and preprocessing, from scratch."""
    import datasets
    import open_clip
    from torchvision import transforms

    from harness.weights.convert import load_tensors

    model = tiny_open_clip()
    base_dir = mirror / "models" / "timm/vit_base_patch32_clip_224.openai"
    model.load_state_dict(load_file(str(base_dir / "open_clip_model.safetensors")))
    expert = load_tensors(source, allow_pickle=True)
    visual = {
        k.removeprefix("model.visual."): v
        for k, v in expert.items()
        if k.startswith("model.visual.")
    }
    model.visual.load_state_dict(visual)
    spec = data.TASKS[task]
    preprocess = transforms.Compose(
        [
            transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD),
        ]
    )
    with torch.no_grad():
        rows = []
        for name in data.classnames(task):
            texts = open_clip.tokenize([t.replace("{}", name) for t in data.templates(task)])
            emb = torch.nn.functional.normalize(model.encode_text(texts), dim=-1).mean(0)
            rows.append(torch.nn.functional.normalize(emb, dim=-1))
        dataset = datasets.load_dataset(
            str(mirror / "datasets" / spec.dataset), spec.config, split=spec.test_split
        )
        pixels = torch.stack([preprocess(row["image"].convert("RGB")) for row in dataset])
        features = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        predictions = (features @ torch.stack(rows).T).argmax(-1)
    labels = torch.tensor(dataset["label"])
    return 100.0 * float((predictions == labels).float().mean())
