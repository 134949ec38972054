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


def test_schema_takes_records_with_and_without_the_method_memory():
    old = copy.deepcopy(VALID)  # written before peak_memory.method_mib existed
    assert validation_errors(old) == []
    new = copy.deepcopy(VALID)
    new["peak_memory"].update(method_mib=12.5, method_measure="cpu_rss", method_rss_mib=12.5)
    assert validation_errors(new) == []
    new["peak_memory"]["method_mib"] = -1
    assert validation_errors(new)[0].startswith("peak_memory.method_mib")


def _hold(mib: int) -> None:
    import time

    import torch

    block = torch.ones(mib * 2**18)  # float32: touched, so resident
    time.sleep(0.05)
    del block


def test_step_memory_sees_a_step_below_the_process_high_water_mark():
    """ru_maxrss alone would read 0 here: the process peaked higher before the step."""
    import torch

    from harness.run.runner import StepMemory

    _hold(384)  # the process's high-water mark is now well above what the step needs
    with StepMemory(torch.device("cpu")) as step:
        _hold(128)
    assert 100 * 2**20 < step.cpu_bytes < 250 * 2**20
    assert step.fields()["method_measure"] == "cpu_rss"
    assert step.fields()["method_mib"] == pytest.approx(step.cpu_bytes / 2**20, abs=0.1)
    with StepMemory(torch.device("cpu")) as idle:
        pass
    assert idle.cpu_bytes < 32 * 2**20


def test_record_holds_the_method_steps_own_memory(tiny_suite_name, tmp_path, monkeypatch):
    from harness.method import Solution
    from harness.registry import METHODS, Entry
    from harness.run.runner import RunSpec, run

    def hungry(context):
        _hold(160)
        return Solution(state=context.pool.output_state({}))

    METHODS.discover()
    entry = Entry(name="hungry", kind="method", obj=hungry, family="baseline", module=__name__)
    monkeypatch.setitem(METHODS._entries, "hungry", entry)
    memory = {}
    for method in ("pretrained", "hungry"):
        spec = RunSpec(method=method, suite="tiny3", results_dir=tmp_path, progress=False)
        record, path = run(spec)
        memory[method] = read_record(path)["peak_memory"]
    assert memory["hungry"]["method_mib"] > 130
    assert memory["pretrained"]["method_mib"] < 32
    assert memory["hungry"]["method_measure"] == "cpu_rss"
    assert memory["hungry"]["cpu_rss_bytes"] > memory["hungry"]["method_mib"] * 2**20


def test_lazy_per_task_work_counts_as_the_methods_cost(tiny_suite_name, tmp_path):
    """TALL masks builds each task's model when the suite asks for it: that time is the
    method's (timings.per_task_s), and the site's merge time adds it to the step."""
    from harness.run.runner import RunSpec, run
    from leaderboard.cells import run_measures

    def record(method: str) -> dict:
        spec = RunSpec(
            method=method, suite="tiny3", select="defaults", device="cpu",
            results_dir=tmp_path, progress=False,
        )  # fmt: skip
        return run(spec)[0]

    lazy, merged = record("tall_masks"), record("task_arithmetic")
    assert lazy["timings"]["per_task_s"] > 0
    assert merged["timings"]["per_task_s"] == 0
    measures = run_measures(lazy)
    timings = lazy["timings"]
    assert measures["merge_s"] == pytest.approx(timings["method_s"] + timings["per_task_s"])
    assert run_measures({**merged, "timings": {"method_s": 1.5}})["merge_s"] == 1.5  # older
