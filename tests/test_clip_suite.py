"""vit8 end to end through a mirror of tiny real-architecture CLIP models and tiny datasets
with the real schema: the same code path (`harness eval`) a hub user takes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from harness.cache import cache_dir
from harness.cli import cli
from harness.errors import ArtifactNotFoundError, HarnessError
from harness.evaluation.zeroshot import zeroshot_weights
from harness.registry import SUITES
from harness.suite import SuiteContext
from tasks.vision.clip import datasets as data
from tasks.vision.clip.datasets import VIT8, LabelOrderError, check_label_names
from tests.clip_mirror import build_mirror, dataset_label_names, save_dataset


@pytest.fixture(scope="session")
def clip_env(tmp_path_factory):
    """One mirror for the session (the harness cache is the session's, see conftest)."""
    root = tmp_path_factory.mktemp("clip")
    saved = {key: os.environ.get(key) for key in ("HF_DATASETS_CACHE",)}
    os.environ["HF_DATASETS_CACHE"] = str(root / "hf-datasets")
    mirror = build_mirror(root / "mirror", VIT8)
    yield root, mirror
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run_cli(*args: str):
    result = CliRunner().invoke(cli, list(args), standalone_mode=False, catch_exceptions=True)
    return result


def eval_vit8(method: str, mirror: Path, results: Path, *extra: str):
    """`harness eval` on vit8 from a mirror, on CPU: the path an offline user takes."""
    return run_cli(
        "eval", "--method", method, "--tasks", "vit8", *extra,
        "--mirror", str(mirror), "--results", str(results), "--device", "cpu", "--quiet",
    )  # fmt: skip


def suite_for(mirror: Path, name: str = "vit8", **options):
    suite = SUITES.get(name).obj(SuiteContext(mirror=mirror, progress=False, options=options))
    return suite


# --------------------------------------------------------------------------- reference
def floor_center_crop(image, size=224):
    """CLIPImageProcessor's crop: offsets rounded down (torchvision rounds half to even)."""
    width, height = image.size
    top, left = (height - size) // 2, (width - size) // 2
    return image.crop((left, top, left + size, top + size))


def reference_accuracy(mirror: Path, task: str, vision_dir: Path | None = None) -> float:
    """A plain loop written from scratch: transformers CLIPModel, torchvision transforms,
    PIL images from load_dataset, zero-shot head from get_text_features."""
    import datasets
    from torchvision import transforms
    from transformers import AutoTokenizer, CLIPModel, CLIPVisionModel

    base_dir = mirror / "models" / "openai/clip-vit-base-patch32"
    model = CLIPModel.from_pretrained(base_dir).eval()
    if vision_dir is not None:
        expert = CLIPVisionModel.from_pretrained(vision_dir)
        state = {f"vision_model.{k}": v for k, v in expert.state_dict().items()}
        model.load_state_dict(state, strict=False)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    spec = data.TASKS[task]
    weights = []
    with torch.no_grad():
        for name in data.classnames(task):
            texts = [t.replace("{}", name) for t in data.templates(task)]
            tokens = tokenizer(
                texts, padding=True, truncation=True, max_length=77, return_tensors="pt"
            )
            out = model.get_text_features(**tokens)
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
            out = torch.nn.functional.normalize(out, dim=-1).mean(0)
            weights.append(torch.nn.functional.normalize(out, dim=-1))
        head = torch.stack(weights)
        transform = transforms.Compose(
            [
                transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.Lambda(floor_center_crop),
                transforms.ToTensor(),
                transforms.Normalize(
                    (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
                ),
            ]
        )
        dataset = datasets.load_dataset(
            str(mirror / "datasets" / spec.dataset), spec.config, split=spec.test_split
        )
        pixels = torch.stack([transform(row[spec.image_column].convert("RGB")) for row in dataset])
        labels = torch.tensor(dataset[spec.label_column])
        features = model.get_image_features(pixel_values=pixels)
        features = features if isinstance(features, torch.Tensor) else features.pooler_output
        logits = torch.nn.functional.normalize(features, dim=-1) @ head.T
    return 100.0 * float((logits.argmax(-1) == labels).float().mean())


# --------------------------------------------------------------------------- tests
def test_eval_vit8_through_the_mirror_matches_a_plain_reference_loop(clip_env):
    root, mirror = clip_env
    results = root / "results"
    result = eval_vit8("pretrained", mirror, results)
    assert result.exception is None, result.output
    record = json.loads(next(results.rglob("*.json")).read_text())
    assert record["suite"]["checkpoint_set"] == "transformers:openai/clip-vit-base-patch32"
    assert list(record["tasks"]) == VIT8
    roles = {artifact["role"]: artifact for artifact in record["artifacts"]}
    assert roles["base"]["id"] == "openai/clip-vit-base-patch32"
    assert roles["expert:dtd"]["id"] == "tanganke/clip-vit-base-patch32_dtd"
    assert roles["dataset:svhn"]["id"] == "ufldl-stanford/svhn"
    assert roles["base"]["sha256"]  # a mirror without download metadata: content hash
    for task in ("mnist", "eurosat", "svhn", "dtd"):
        assert record["tasks"][task]["metric"] == pytest.approx(
            reference_accuracy(mirror, task), abs=1e-6
        ), task
        assert record["tasks"][task]["n"] == 10
    # individual reference = each expert on its task, also against the plain loop
    expert_dir = mirror / "models" / "tanganke/clip-vit-base-patch32_gtsrb"
    assert record["tasks"]["gtsrb"]["individual"] == pytest.approx(
        reference_accuracy(mirror, "gtsrb", expert_dir), abs=1e-6
    )


def test_merging_method_runs_on_vit8_and_reuses_heads_and_stores(clip_env):
    root, mirror = clip_env
    results = root / "results-ties"
    heads_before = set((cache_dir() / "zeroshot-heads").iterdir())
    result = eval_vit8(
        "ties", mirror, results, "--only", "mnist,dtd", "--set", "scaling=0.3",
        "--set", "density=0.2",
    )  # fmt: skip
    assert result.exception is None, result.output
    record = json.loads(next(results.rglob("*.json")).read_text())
    assert set(record["tasks"]) == {"mnist", "dtd"}
    assert set((cache_dir() / "zeroshot-heads").iterdir()) == heads_before


def test_model_parameters_are_the_pool_names(clip_env):
    _, mirror = clip_env
    suite = suite_for(mirror)
    suite.select_tasks(["mnist"])
    suite.prepare()
    pool = suite.pool()
    model = suite.build_model(pool.base_state())
    assert sorted(name for name, _ in model.named_parameters()) == sorted(pool.names)
    features = model(torch.randn(3, 3, 224, 224))
    assert features.shape == (3, 16)
    assert torch.allclose(features.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_heads_are_normalised_template_averages(clip_env):
    _, mirror = clip_env
    suite = suite_for(mirror)
    suite.select_tasks(["resisc45"])
    suite.prepare()
    head = suite.head("resisc45")
    weights = head.weight
    assert weights.shape == (45, 16)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(45), atol=1e-5)
    encode = suite.backend.text_encoder(torch.device("cpu"))
    name = data.classnames("resisc45")[7]
    single = torch.nn.functional.normalize(
        encode([t.replace("{}", name) for t in data.templates("resisc45")]), dim=-1
    )
    expected = torch.nn.functional.normalize(single.mean(0), dim=-1)
    assert torch.allclose(weights[7], expected, atol=1e-5)
    assert not torch.allclose(weights[7], single[0], atol=1e-3)  # really an average


def test_zeroshot_weights_average_then_normalise():
    table = {
        "a cat.": [3.0, 0.0],
        "the cat!": [0.0, 1.0],
        "a dog.": [1.0, 0.0],
        "the dog!": [1.0, 1.0],
    }

    def encode(texts):
        return torch.tensor([table[text] for text in texts])

    weights = zeroshot_weights(encode, ["cat", "dog"], ["a {}.", "the {}!"])
    assert torch.allclose(weights[0], torch.tensor([1.0, 1.0]) / 2**0.5, atol=1e-6)
    dog = torch.tensor([1.0 + 2**-0.5, 2**-0.5])  # each template normalised before the mean
    assert torch.allclose(weights[1], dog / dog.norm(), atol=1e-6)


def test_validation_is_a_fixed_seed_tenth_of_train(clip_env):
    _, mirror = clip_env
    suite = suite_for(mirror)
    suite.select_tasks(["dtd"])
    suite.prepare()
    validation = suite.store("dtd", "validation")
    train = suite.store("dtd", "train")
    assert (len(train), len(validation)) == (18, 2)
    keep, held = data.validation_indices(20)
    assert set(keep).isdisjoint(held) and len(keep) + len(held) == 20
    assert np.array_equal(keep, data.validation_indices(20)[0])
    import datasets

    rows = datasets.load_dataset(str(mirror / "datasets/tanganke/dtd"), split="train")
    assert validation.labels.tolist() == [rows[int(i)]["label"] for i in held]
    images, labels = next(iter(suite.batches("dtd", "validation", batch_size=8)))
    assert images.dtype == torch.float32 and images.shape == (2, 3, 224, 224)
    assert labels.tolist() == validation.labels.tolist()


def test_label_order_mismatch_fails_with_one_line(clip_env, tmp_path):
    _, mirror = clip_env
    other = tmp_path / "mirror"
    shutil.copytree(mirror / "models", other / "models", symlinks=True)
    names = data.classnames("mnist")
    names[3], names[5] = names[5], names[3]
    save_dataset(other, "mnist", label_names=names)
    result = eval_vit8("pretrained", other, tmp_path / "r", "--only", "mnist")
    assert isinstance(result.exception, LabelOrderError)
    message = str(result.exception)
    assert "label 3 is '5'" in message and "ylecun/mnist" in message and "\n" not in message


def test_label_names_may_differ_in_wording_but_not_in_count():
    eurosat = data.TASKS["eurosat"]
    short = dataset_label_names("eurosat")  # the hub copy's short EuroSAT names
    check_label_names(eurosat, short, data.classnames("eurosat"), "eurosat")
    with pytest.raises(LabelOrderError, match="9 classes"):
        check_label_names(eurosat, short[:9], data.classnames("eurosat"), "eurosat")
    swapped = short[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(LabelOrderError, match="list has it at 1"):
        check_label_names(eurosat, swapped, data.classnames("eurosat"), "eurosat")


def test_missing_artifacts_are_all_named_before_anything_loads(clip_env, tmp_path):
    """An expert and a dataset missing: one error names both, and the script it names
    holds the `hf download` commands for exactly those two."""
    _, mirror = clip_env
    other = tmp_path / "mirror"
    shutil.copytree(
        mirror,
        other,
        symlinks=True,
        ignore=shutil.ignore_patterns("clip-vit-base-patch32_dtd", "mnist"),
    )
    suite = suite_for(other)
    with pytest.raises(ArtifactNotFoundError) as error:
        suite.prepare()
    message = str(error.value)
    assert "lacks 2 of the 17 artifacts that vit8 needs" in message
    assert "models tanganke/clip-vit-base-patch32_dtd; datasets ylecun/mnist" in message
    assert "huggingface-cli" not in message and "\n" not in message
    assert suite._backend is None  # nothing was loaded
    script = Path(message.split("are in ")[1].split(" ")[0])
    commands = [line for line in script.read_text().splitlines() if line.startswith("hf ")]
    assert commands == [
        "hf download tanganke/clip-vit-base-patch32_dtd --include '*.json' "
        "--include '*.safetensors' --include '*.txt' "
        '--local-dir "$MIRROR/models/tanganke/clip-vit-base-patch32_dtd"',
        'hf download ylecun/mnist --repo-type dataset --local-dir "$MIRROR/datasets/ylecun/mnist"',
    ]
    assert f'MIRROR="${{1:-{other}}}"' in script.read_text()


def test_open_clip_experts_say_how_to_convert_them(clip_env, tmp_path):
    _, mirror = clip_env
    suite = suite_for(mirror, checkpoints="open_clip")
    suite.select_tasks(["mnist"])
    with pytest.raises(ArtifactNotFoundError) as error:
        suite.prepare()
    message = str(error.value)
    assert "timm/vit_base_patch32_clip_224.openai" in message
    assert (
        "task-vectors/ViT-B-32_mnist" in message
        and "1 is not on the hub but made as in `harness convert checkpoint" in message
    )
    script = Path(message.split("are in ")[1].split(" ")[0]).read_text()
    assert (
        "# harness convert checkpoint <checkpoints>/ViT-B-32/MNIST/finetuned.pt "
        '"$MIRROR/models/task-vectors/ViT-B-32_mnist" --allow-pickle'
    ) in script


def test_suite_options_are_checked_and_recorded(clip_env):
    entry = SUITES.get("vit20")
    assert entry.resolve_params({"arch": "vit-l-14"})["arch"] == "vit-l-14"
    with pytest.raises(HarnessError, match="arch"):
        entry.resolve_params({"arch": "vit-h-14"})
    assert len(SUITES.get("vit14").obj.tasks) == 14 and len(entry.obj.tasks) == 20
    published = SUITES.get("vit8").obj.published
    sets = {p.checkpoint_set for p in published}
    assert "transformers:openai/clip-vit-base-patch32" in sets
    assert "open_clip:ViT-B-32:openai" in sets
    ties = [p for p in published if p.method == "ties" and "base-patch32" in p.checkpoint_set]
    assert ties[0].average == 72.2 and set(ties[0].per_task) == set(VIT8)
