"""zoo-imagenet: the published ground truth offline, and features from a tiny mirror in the
real formats (torchvision state dicts as safetensors, hub-layout parquet images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from harness.errors import ArtifactNotFoundError
from harness.run.runner import RunSpec, run
from tasks.transferability import sfda_group1, zoo_imagenet


def _spec(method: str, tmp_path, **kwargs) -> RunSpec:
    return RunSpec(method=method, suite="zoo-imagenet", select="defaults", device="cpu",
                   results_dir=tmp_path / "results", progress=False, **kwargs)  # fmt: skip


def test_imagenet_top1_baseline_reaches_the_published_065(tmp_path):
    """REFERENCE: the models' ImageNet top-1 reaches a mean τ_w of about 0.65 on SFDA's
    group-1 ground truth, between LogME's 0.509 and SFDA's 0.710 (both published)."""
    record, _ = run(_spec("source_accuracy", tmp_path))
    assert record["average"] == pytest.approx(0.654, abs=0.002)
    assert record["tasks"]["cifar10"]["metrics"]["n"] == 11
    summary = record["suite"]["summary"]["ground_truth_protocol"]
    assert summary["ground_truth"] == "published" and "tw_group1" in summary["source"]
    published = {p.method: p for p in zoo_imagenet.ZooImagenet.published}
    assert published["sfda"].average == pytest.approx(0.710, abs=0.001)
    assert published["logme"].average == pytest.approx(0.509, abs=0.001)
    assert published["logme"].average < record["average"] < published["sfda"].average


def test_feature_estimators_need_the_mirror_and_say_so(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="features of resnet34 on cifar10") as error:
        run(_spec("logme", tmp_path, only=["cifar10"], mirror=tmp_path / "empty"))
    assert "\n" not in str(error.value)
    script = next((tmp_path.parent / "harness-cache" / "fetch").glob("zoo-imagenet-*resnet34*"))
    text = script.read_text()
    assert "get_model('resnet34', weights='IMAGENET1K_V1')" in text and "tanganke/cifar10" in text


def _tiny_mirror(root, models):
    import torchvision
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature
    from PIL import Image

    for name in models:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None)
        folder = root / "models" / "torchvision" / name
        folder.mkdir(parents=True)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
    rng = np.random.default_rng(0)
    folder = root / "datasets" / "tanganke" / "cifar10" / "data"
    folder.mkdir(parents=True)
    features = Features({"image": ImageFeature(), "label": ClassLabel(num_classes=10)})
    rows = {
        "image": [
            Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)) for _ in range(12)
        ],
        "label": [i % 3 for i in range(12)],
    }
    Dataset.from_dict(rows, features=features).to_parquet(
        str(folder / "train-00000-of-00001.parquet")
    )
    return root


def test_features_from_a_tiny_mirror_rank_and_are_cached(tmp_path, monkeypatch):
    models = ("mobilenet_v2", "mnasnet1_0")
    mirror = _tiny_mirror(tmp_path / "mirror", models)
    options = {"models": ",".join(models)}
    spec = _spec("leep", tmp_path, only=["cifar10"], mirror=mirror, suite_options=options)
    record, _ = run(spec)
    scores = record["method_info"]["scores"]["cifar10"]
    assert set(scores) == set(models) and all(np.isfinite(list(scores.values())))
    assert record["tasks"]["cifar10"]["metrics"]["n"] == 2
    # features are cached once per (model, target): a second estimator extracts nothing
    monkeypatch.setattr(zoo_imagenet, "extract", lambda *a, **k: pytest.fail("re-extracted"))
    spec = _spec("logme", tmp_path, only=["cifar10"], mirror=mirror, suite_options=options)
    again, _ = run(spec)
    assert set(again["method_info"]["scores"]["cifar10"]) == set(models)


def test_extract_reads_the_classifier_input_and_imagenet_softmax():
    import torchvision
    from PIL import Image

    torch.manual_seed(0)
    model = torchvision.models.get_model("mobilenet_v2", weights=None).eval()
    images = [Image.fromarray(np.full((30, 50, 3), 128, dtype=np.uint8))] * 2
    features, probs = zoo_imagenet.extract(model, "mobilenet_v2", images, 1, torch.device("cpu"))
    assert features.shape == (2, 1280) and probs.shape == (2, 1000)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, dtype=torch.float64))
    assert set(sfda_group1.MODELS) == set(sfda_group1.IMAGENET_TOP1)
