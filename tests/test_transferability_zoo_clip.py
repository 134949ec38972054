"""zoo-clip end to end on the tiny CLIP mirror: experts and merges as the zoo, features
cached, ground truth by ``harness transfer finetune``, then an estimator ranked on it."""

from __future__ import annotations

import numpy as np
import pytest

from harness.run.records import read_record, record_files
from tasks.vision.clip.datasets import VIT8
from tests.clip_mirror import build_mirror
from tests.harness_cli import invoke

TARGETS = "mnist,dtd"
OPTIONS = ("--suite-set", "steps=2", "--suite-set", "batch_size=4", "--suite-set",
           "examples=12", "--suite-set", "facts_examples=2")  # fmt: skip


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    return build_mirror(tmp_path / "mirror", VIT8)


def test_zoo_clip_ranks_experts_and_merges_against_harness_fine_tuning(
    mirror, tmp_path, monkeypatch, capsys
):
    def cli(*args):
        return invoke(monkeypatch, capsys, *args, "--mirror", str(mirror), "--quiet")

    results = tmp_path / "results"
    estimator = ("eval", "--method", "logme", "--tasks", "zoo-clip", "--only", TARGETS,
                 "--select", "defaults", "--device", "cpu", "--results", str(results))  # fmt: skip
    code, _, err = cli(*estimator, *OPTIONS)
    assert code == 2 and "harness transfer finetune --tasks zoo-clip" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = cli("transfer", "finetune", "--tasks", "zoo-clip", "--only", TARGETS,
                         "--device", "cpu", *OPTIONS)  # fmt: skip
    assert code == 0, err
    assert "20 of 20" in err  # two targets × (pretrained + 7 other experts + 2 merges)
    assert "merge_ties" in out and "expert_sun397" in out
    code, _, err = cli(*estimator, *OPTIONS)
    assert code == 0, err
    (path,) = record_files(results)
    record = read_record(path)
    assert set(record["tasks"]) == {"mnist", "dtd"}
    for target, entry in record["tasks"].items():
        scored = record["method_info"]["scores"][target]
        assert len(scored) == 10 and f"expert_{target}" not in scored
        assert "merge_task_arithmetic" in scored and "pretrained" in scored
        assert np.isfinite(entry["metric"]) and entry["metrics"]["n"] == 10
    protocol = record["suite"]["summary"]["ground_truth_protocol"]
    assert protocol["steps"] == 2 and protocol["ground_truth"].startswith("computed")
