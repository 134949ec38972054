"""mini8: the data is what it says, and the built suite discriminates as vit8 does.

The end-to-end test builds the real suite (minutes on 2 cores; cached afterwards) and
runs the quick-start grid through the CLI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.run.records import read_record, record_files
from tasks.vision.mini8 import data as data
from tests.test_runner_cli import invoke


def test_tasks_have_the_advertised_splits_classes_and_ranges():
    for task, (_, classes, _) in data.TASKS.items():
        if task in ("mnist", "color_digits"):
            continue  # read the 5k MNIST file; covered by the end-to-end test
        splits = data.load(task, 0)
        assert set(splits) == set(data.SPLITS)
        for split in splits.values():
            assert split.images.shape[1:] == (3, data.SIZE, data.SIZE)
            assert split.images.dtype == torch.float32
            assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
            assert sorted(torch.unique(split.labels).tolist()) == list(range(classes))


def test_same_seed_same_images_other_seed_other_images():
    first, again, other = data.load("shapes", 0), data.load("shapes", 0), data.load("shapes", 1)
    assert torch.equal(first["test"].images, again["test"].images)
    assert not torch.equal(first["test"].images, other["test"].images)


def test_mnist_splits_are_disjoint_and_shared_with_color_digits():
    indices = data._split_indices(5000, data._MNIST_SPLIT, 0)
    seen = np.concatenate(list(indices.values()))
    assert len(np.unique(seen)) == len(seen) == 5000
    digits = data.load("digits", 0)
    assert sum(len(split.labels) for split in digits.values()) == 1797


def test_drawn_classes_are_not_trivially_constant():
    """Each class of a drawn task varies (positions, colours), so it must be learned."""
    splits = data.load("arrows", 0)["train"]
    for label in range(8):
        images = splits.images[splits.labels == label]
        assert float(images.std(dim=0).mean()) > 0.1


@pytest.mark.slow
def test_quick_start_grid_discriminates_like_vit8(monkeypatch, capsys, tmp_path):
    """As on vit8 (zero-shot 48 < averaging 66 < task arithmetic 69 < TIES 72 < experts
    90): individual ≥ simple averaging + 10 points, and task arithmetic and TIES between
    averaging and the experts. The margins over averaging are about one point on mini8's
    small tower (2–6 on vit8); the table is printed.
    """
    results = tmp_path / "results"
    methods = "pretrained,individual,weight_average,task_arithmetic,ties"
    code, out, err = invoke(
        monkeypatch, capsys, "grid", "--methods", methods, "--tasks", "mini8",
        "--results", str(results), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    records = {read_record(p)["method"]["name"]: read_record(p) for p in record_files(results)}
    average = {name: record["average"] for name, record in records.items()}
    print("mini8 averages:", {k: round(v, 1) for k, v in average.items()})
    assert average["individual"] >= average["weight_average"] + 10
    assert average["pretrained"] < average["weight_average"]
    for merged in ("task_arithmetic", "ties"):
        assert average["weight_average"] < average[merged] < average["individual"] - 10
    assert len(records["ties"]["artifacts"]) == 8 + 5
    # the cache is warm now: the same run again reproduces the record exactly
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--method", "ties", "--tasks", "mini8",
        "--results", str(tmp_path / "again"), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    again = read_record(next(record_files(tmp_path / "again")))
    assert again["tasks"] == records["ties"]["tasks"]
    assert again["hyperparameters"] == records["ties"]["hyperparameters"]


def test_a_build_stage_starts_from_the_same_rng_state_whatever_ran_before(tmp_path, capsys):
    """So a resumed build (earlier stages loaded, not run) writes the same bytes."""
    from tasks.vision.mini8 import suite

    def make() -> dict[str, torch.Tensor]:
        return {"w": torch.rand(4)}

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    torch.manual_seed(123)
    first = suite._stage(tmp_path / "a", "s", make, "first")
    torch.rand(10)  # earlier stages consumed the global generator differently
    before = torch.get_rng_state()
    second = suite._stage(tmp_path / "b", "s", make, "second")
    assert torch.equal(first["w"], second["w"])
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is untouched
    files = [tmp_path / name / "s.safetensors" for name in "ab"]
    assert files[0].read_bytes() == files[1].read_bytes()
    # a finished stage is read back, not made again
    again = suite._stage(tmp_path / "a", "s", lambda: {"w": torch.zeros(4)}, "again")
    assert torch.equal(again["w"], first["w"])
    assert "mini8: first done" in capsys.readouterr().err
