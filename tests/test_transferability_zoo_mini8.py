"""zoo-mini8 on the real mini8 build (slow: builds mini8, then the zoo with a short
fine-tuning protocol so that the test stays in minutes)."""

from __future__ import annotations

import pytest

from harness.run.runner import RunSpec, run
from harness.transferability.finetune import FinetuneProtocol
from tasks.transferability import zoo_mini8


@pytest.mark.slow
def test_zoo_mini8_builds_ranks_and_separates_estimators(monkeypatch, tmp_path):
    quick = FinetuneProtocol(learning_rates=(1e-3,), weight_decays=(0.0, 0.1), steps=4)
    monkeypatch.setattr(zoo_mini8, "PROTOCOL", quick)
    monkeypatch.setattr(zoo_mini8, "ESTIMATION_EXAMPLES", 200)
    records = {}
    for method in ("logme", "random_ranking", "source_accuracy"):
        spec = RunSpec(method=method, suite="zoo-mini8", select="defaults", device="cpu",
                       results_dir=tmp_path, progress=False)  # fmt: skip
        records[method], _ = run(spec)
    logme = records["logme"]
    assert list(logme["tasks"]) == zoo_mini8.ZooMini8.tasks
    for target, entry in logme["tasks"].items():
        scored = logme["method_info"]["scores"][target]
        assert len(scored) == 13 and f"expert_{target}" not in scored  # own expert left out
        assert entry["metrics"]["n"] == 13
    protocol = logme["suite"]["summary"]["ground_truth_protocol"]
    assert protocol["steps"] == 4 and protocol["own_expert_left_out"] is True
    averages = {name: record["average"] for name, record in records.items()}
    assert len(set(averages.values())) == 3  # the estimators' τ_w differ
    # the build is cached: running again reproduces the record's numbers exactly
    spec = RunSpec(method="logme", suite="zoo-mini8", select="defaults", device="cpu",
                   results_dir=tmp_path / "again", progress=False)  # fmt: skip
    again, _ = run(spec)
    assert again["tasks"] == logme["tasks"] | {
        t: {**logme["tasks"][t], "metrics": {**logme["tasks"][t]["metrics"],
            "estimator_s": again["tasks"][t]["metrics"]["estimator_s"]}}
        for t in logme["tasks"]
    }  # fmt: skip
