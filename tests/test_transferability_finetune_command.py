"""``harness transfer finetune`` on a tiny zoo of CLIP towers: every pair fine-tuned over
the grid, resumable pair by pair, and the ground truth ``harness eval`` ranks against."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cache import cache_dir, content_key
from harness.errors import HarnessError
from harness.keyed_log import KeyedLog
from harness.run.records import read_record, record_files
from harness.suite import Artifact
from harness.transferability import finetune
from harness.transferability.finetune import FinetunableZoo, FinetunePair, FinetuneProtocol
from harness.transferability.inputs import TargetInputs
from harness.transferability.zoo import GroundTruth
from tests.conftest import register_for_test
from tests.harness_cli import invoke
from tests.tiny_suite import CONFIG, _task_data, new_backbone

PROTOCOL = FinetuneProtocol(learning_rates=(1e-3, 1e-2), weight_decays=(0.0,), steps=4,
                            batch_size=16)  # fmt: skip
SOURCES = {"seed0": 0, "seed1": 1, "seed2": 2}
CLASSES = {"a": 3, "b": 4}


class TinyFinetuneZoo(FinetunableZoo):
    """Three randomly initialised tiny CLIP towers × two tiny-suite tasks; ground truth
    from ``harness transfer finetune``."""

    tasks = list(CLASSES)
    has_source_classifiers = False

    @property
    def checkpoint_set(self) -> str:
        return "built:tinyft"

    def prepare(self) -> None:
        self.data = {task: _task_data(task) for task in self.tasks}

    def finetune_protocol(self) -> FinetuneProtocol:
        return PROTOCOL

    def finetune_pairs(self) -> list[FinetunePair]:
        return [
            FinetunePair(
                source,
                target,
                lambda s=seed: new_backbone(s),
                CONFIG["hidden_size"],
                CLASSES[target],
                lambda t=target: self.data[t],
            )  # fmt: skip
            for target in self.tasks
            for source, seed in SOURCES.items()
        ]

    def finetune_log(self) -> Path:
        return cache_dir() / "tinyft" / content_key(PROTOCOL.to_json()) / "finetune.jsonl"

    def sources(self, target: str) -> list[str]:
        return list(SOURCES)

    def target_inputs(self, source: str, target: str) -> TargetInputs:
        images, labels = self.data[target]["train"]
        with torch.no_grad():
            features = new_backbone(SOURCES[source])(images)
        return TargetInputs(features.double().numpy(), labels.numpy())

    def source_facts(self, source: str, target: str) -> dict[str, float]:
        return {"parameters": 1.0}

    def ground_truth(self, target: str) -> Mapping[str, GroundTruth]:
        log = KeyedLog(self.finetune_log())
        truth = {}
        for source in SOURCES:
            entry = log.get(f"{source}/{target}")
            if entry is None:
                raise HarnessError("run `harness transfer finetune --tasks tinyft` first")
            truth[source] = GroundTruth(entry["validation"], entry["test"], entry["config"])
        return truth

    def artifacts(self) -> list[Artifact]:
        return [Artifact("zoo", "tiny/ft", "built")]


@pytest.fixture
def run_cli(monkeypatch, capsys):
    register_for_test(monkeypatch, "tinyft", TinyFinetuneZoo)
    return lambda *args: invoke(monkeypatch, capsys, *args)


def test_finetune_command_fine_tunes_every_pair_once_and_resumes(run_cli, monkeypatch, tmp_path):
    calls = []
    original = finetune.finetune_once
    monkeypatch.setattr(
        finetune, "finetune_once", lambda *a, **k: calls.append(a[4]) or original(*a, **k)
    )
    code, out, err = run_cli("transfer", "finetune", "--tasks", "tinyft", "--only", "a",
                             "--device", "cpu", "--quiet")  # fmt: skip
    assert code == 0, err
    assert len(calls) == 3 * 2  # three sources × the two-point grid
    assert "3 of 3" in err and "seed1" in out and "log:" in out
    # an interrupted run resumes: target a's pairs are in the log, only b's are trained
    calls.clear()
    code, out, err = run_cli("transfer", "finetune", "--tasks", "tinyft", "--device", "cpu",
                             "--quiet")  # fmt: skip
    assert code == 0, err
    assert len(calls) == 3 * 2 and "3 of 6" in err
    log_path = TinyFinetuneZoo.finetune_log(None)  # type: ignore[arg-type]
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(entries) == 6
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "seed" in line}
    for entry in entries:
        source, target = entry["key"].split("/")
        assert len(entry["grid"]) == 2
        assert entry["validation"] == max(point["validation"] for point in entry["grid"])
        column = list(CLASSES).index(target)
        assert table[source][column] == f"{entry['test']:.1f}"
    # a finished zoo trains nothing, and harness eval ranks against the same ground truth
    calls.clear()
    code, _, err = run_cli("transfer", "finetune", "--tasks", "tinyft", "--quiet")
    assert code == 0 and not calls and "0 of 6" in err
    results = tmp_path / "results"
    code, _, err = run_cli("eval", "--method", "logme", "--tasks", "tinyft", "--select",
                           "defaults", "--results", str(results), "--quiet")  # fmt: skip
    assert code == 0, err
    (path,) = record_files(results)
    record = read_record(path)
    assert set(record["tasks"]) == set(CLASSES)
    assert all(np.isfinite(e["metric"]) for e in record["tasks"].values())


def test_finetune_command_errors_are_one_line(run_cli):
    for args, message in [
        (("--tasks", "nope"), "nope"),
        (("--tasks", "mini8"), "not a model zoo"),
        (("--tasks", "zoo-imagenet"), "published"),
        (("--tasks", "tinyft", "--only", "zz"), "no task 'zz'"),
    ]:
        code, _, err = run_cli("transfer", "finetune", *args, "--quiet")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
