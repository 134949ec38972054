"""Run records: schema validation, atomic writes, corrupt files reported and skipped."""

import copy
import json

import pytest

from harness.errors import RecordError, ResultsDirError
from harness.run.records import (
    ensure_writable,
    load_records,
    read_record,
    validation_errors,
    write_record,
)

VALID = {
    "schema_version": 1,
    "run_id": "ties__mini8__seed0__abcdef12",
    "created": "2026-11-22T10:00:00+00:00",
    "method": {
        "name": "ties",
        "family": "merging",
        "reference": "https://arxiv.org/abs/2306.01708",
    },
    "hyperparameters": {"scaling": 0.3, "density": 0.2},
    "selection": {"strategy": "defaults", "fixed": []},
    "suite": {"name": "mini8", "checkpoint_set": "x", "metric": "accuracy", "tasks": ["a", "b"]},
    "tasks": {
        "a": {"metric": 80.0, "individual": 90.0, "normalized": 88.9, "n": 10},
        "b": {"metric": 60.0, "individual": 80.0, "normalized": 75.0, "n": 10},
    },
    "average": 70.0,
    "normalized_average": 81.95,
    "artifacts": [{"role": "base", "id": "harness/x", "source": "built", "sha256": "00"}],
    "seed": 0,
    "environment": {"harness_version": "0", "python": "3.11", "packages": {}, "device": "cpu"},
    "timings": {"load_s": 1, "method_s": 1, "evaluate_s": 1, "total_s": 3},
    "peak_memory": {"cpu_rss_bytes": 1},
    "extra_parameters": 0,
    "command": "harness eval --method ties --tasks mini8",
}


def test_valid_record_round_trips(tmp_path):
    path = write_record(tmp_path, copy.deepcopy(VALID))
    assert path == tmp_path / "mini8" / "ties" / f"{VALID['run_id']}.json"
    assert read_record(path) == VALID
    assert not list(path.parent.glob(".*")), "no temporary files left behind"


def test_existing_record_is_never_overwritten(tmp_path):
    path = write_record(tmp_path, copy.deepcopy(VALID))
    before = path.read_text()
    with pytest.raises(RecordError, match="exists already"):
        write_record(tmp_path, copy.deepcopy(VALID))
    assert path.read_text() == before


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("seed"), "(top level)"),
        (lambda r: r["method"].update(family="magic"), "method.family"),
        (lambda r: r.update(average=12.0), "average"),
        (lambda r: r["tasks"]["a"].update(metric="high"), "tasks.a.metric"),
        (lambda r: r.update(run_id="../escape"), "run_id"),
    ],
)
def test_validation_names_the_field(mutate, field):
    record = copy.deepcopy(VALID)
    mutate(record)
    problems = validation_errors(record)
    assert problems and problems[0].startswith(field)


def test_invalid_record_is_not_written(tmp_path):
    record = copy.deepcopy(VALID)
    record["tasks"]["a"]["metric"] = "high"
    with pytest.raises(RecordError, match="tasks.a.metric"):
        write_record(tmp_path, record)
    assert not list(tmp_path.rglob("*.json"))


def test_corrupt_files_are_reported_and_skipped(tmp_path):
    good = write_record(tmp_path, copy.deepcopy(VALID))
    broken = tmp_path / "mini8" / "ties" / "broken.json"
    broken.write_text('{"schema_version": 1, ')
    wrong = tmp_path / "mini8" / "ties" / "wrong.json"
    wrong.write_text(json.dumps({**VALID, "seed": "zero"}))
    loaded = load_records(tmp_path)
    assert loaded.paths == [good]
    assert len(loaded.problems) == 2
    assert any("broken.json: not valid JSON" in p for p in loaded.problems)
    assert any("wrong.json: seed" in p for p in loaded.problems)
    assert broken.read_text() == '{"schema_version": 1, ', "a corrupt record is never touched"


def test_unwritable_results_dir_fails_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ResultsDirError, match="not writable"):
        ensure_writable(blocker / "results")
