"""The method × suite loop end to end through the real CLI, on the tiny suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.registry import METHODS
from harness.run.records import read_record, record_files
from tests.harness_cli import invoke


@pytest.fixture
def run_cli(monkeypatch, capsys, tiny_suite_name):
    return lambda *args: invoke(monkeypatch, capsys, *args)


def test_eval_writes_a_valid_record_and_prints_the_table(run_cli, tmp_path):
    results = tmp_path / "results"
    code, out, err = run_cli(
        "eval", "--method", "ties", "--tasks", "tiny3", "--results", str(results), "--quiet"
    )
    assert code == 0, err
    (path,) = record_files(results)
    record = read_record(path)
    assert record["method"]["name"] == "ties" and record["suite"]["name"] == "tiny3"
    assert set(record["tasks"]) == {"a", "b", "c"}
    assert record["selection"]["strategy"] == "grid"
    assert record["selection"]["split"] == "validation"
    assert len(record["selection"]["candidates"]) == len(METHODS.get("ties").grid["scaling"])
    best = max(record["selection"]["candidates"], key=lambda c: c["score"])
    assert record["hyperparameters"] == best["hyperparameters"]
    assert record["hyperparameters"]["density"] == 0.2  # no grid: the paper default
    for entry in record["tasks"].values():
        assert entry["normalized"] == pytest.approx(100 * entry["metric"] / entry["individual"])
    assert record["command"].startswith("harness eval --method ties --tasks tiny3")
    assert "average" in out and str(path) in out


def test_fixed_hyperparameters_skip_selection(run_cli, tmp_path):
    code, _, err = run_cli(
        "eval", "--method", "task_arithmetic", "--tasks", "tiny3", "--set", "scaling=0.5",
        "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    record = read_record(next(record_files(tmp_path)))
    assert record["hyperparameters"] == {"scaling": 0.5}
    assert record["selection"]["strategy"] == "fixed"
    assert record["selection"]["fixed"] == ["scaling"]


def test_same_seed_same_record(run_cli, tmp_path):
    records = []
    for name in ("first", "second"):
        code, _, err = run_cli(
            "eval", "--method", "ties", "--tasks", "tiny3", "--seed", "3",
            "--results", str(tmp_path / name), "--quiet",
        )  # fmt: skip
        assert code == 0, err
        records.append(read_record(next(record_files(tmp_path / name))))
    first, second = records
    assert first["run_id"] == second["run_id"]
    assert first["tasks"] == second["tasks"]
    assert first["selection"] == second["selection"]


def test_individual_and_pretrained_bracket_the_merges(run_cli, tmp_path):
    code, _, err = run_cli(
        "grid", "--methods", "pretrained,individual,weight_average", "--tasks", "tiny3",
        "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    by_method = {read_record(p)["method"]["name"]: read_record(p) for p in record_files(tmp_path)}
    assert by_method["individual"]["normalized_average"] == pytest.approx(100.0)
    assert by_method["individual"]["extra_parameters"] > 0
    assert by_method["individual"]["average"] > by_method["pretrained"]["average"]


def test_grid_resumes_where_it_stopped(run_cli, tmp_path):
    args = ["grid", "--methods", "pretrained,weight_average", "--tasks", "tiny3"]
    args += ["--results", str(tmp_path), "--quiet"]
    code, _, _ = run_cli(*args)
    assert code == 0
    paths = sorted(record_files(tmp_path))
    assert len(paths) == 2
    kept = paths[0].read_text()
    paths[1].unlink()  # as if the run had been killed before this cell
    code, out, _ = run_cli(*args)
    assert code == 0
    assert "already recorded, skipped" in out
    assert "grid finished: 1 run, 1 already recorded" in out
    assert paths[0].read_text() == kept


def test_grid_refuses_a_wrong_expert_count_before_running_anything(run_cli, tmp_path):
    """slerp takes two experts; tiny3 has three: the grid stops before its first cell."""
    args = ["grid", "--methods", "pretrained,slerp", "--tasks", "tiny3"]
    code, out, err = run_cli(*args, "--results", str(tmp_path), "--quiet")
    assert code == 2
    assert "slerp merges exactly 2 experts" in err and "--only" in err
    assert "running" not in out
    assert not list(record_files(tmp_path))
    code, _, _ = run_cli(*args, "--only", "a,b", "--results", str(tmp_path), "--quiet")
    assert code == 0, "with two tasks chosen the same grid runs"


def test_interrupted_run_leaves_earlier_records_intact(run_cli, tmp_path, monkeypatch):
    code, _, _ = run_cli(
        "eval", "--method", "pretrained", "--tasks", "tiny3", "--results", str(tmp_path), "--quiet"
    )
    assert code == 0
    before = {p: p.read_text() for p in record_files(tmp_path)}

    import harness.run.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.run.runner, "evaluate_solution", interrupted)
    code, _, err = run_cli(
        "eval", "--method", "weight_average", "--tasks", "tiny3", "--results", str(tmp_path),
        "--quiet",
    )  # fmt: skip
    assert code == 130
    assert "records written so far are intact" in err
    assert {p: p.read_text() for p in record_files(tmp_path)} == before
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") and p.is_file()]
    assert not list(tmp_path.rglob("*.lock")), "Ctrl-C removes the cell's lock"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "tie", "--tasks", "tiny3"], "unknown method 'tie' (did you mean ties"),
        (["--method", "ties", "--tasks", "tiny"], "unknown suite 'tiny'"),
        (["--method", "ties", "--tasks", "tiny3", "--set", "scalling=1"], "did you mean scaling"),
        (["--method", "ties", "--tasks", "tiny3", "--set", "density=2"], "above its maximum"),
        (["--method", "ties", "--tasks", "tiny3", "--set", "scaling=high"], "must be a number"),
        (["--method", "ties", "--tasks", "tiny3", "--set", "scaling"], "expects key=value"),
        (["--method", "ties", "--tasks", "tiny3", "--only", "a,z"], "has no task 'z'"),
        (["--method", "ties", "--tasks", "tiny3", "--backend", "hf"], "has no option 'backend'"),
        (["--method", "ties", "--tasks", "tiny3", "--checkpoints", "x"], "no option 'checkp"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, args, message):
    code, out, err = run_cli("eval", *args, "--results", str(tmp_path), "--quiet")
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(record_files(tmp_path))


def test_a_suite_option_given_twice_with_two_values_is_refused(run_cli, tmp_path):
    both = ("--backend", "vllm", "--suite-set", "backend=hf")
    where = ("--results", str(tmp_path), "--quiet")
    code, _, err = run_cli("eval", "--method", "ties", "--tasks", "tiny3", *both, *where)
    assert code == 2
    assert "--backend vllm and --suite-set backend=hf disagree" in err
    assert err.count("\n") == 1 and not list(record_files(tmp_path))


def test_unwritable_results_directory(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(
        "eval", "--method", "pretrained", "--tasks", "tiny3", "--results", str(blocker / "r")
    )
    assert code == 2 and "not writable" in err


def test_corrupt_expert_is_reported_and_nothing_written(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    code, _, _ = run_cli(
        "eval", "--method", "pretrained", "--tasks", "tiny3", "--results", str(tmp_path / "r"),
        "--quiet",
    )  # fmt: skip
    assert code == 0
    (expert,) = (tmp_path / "cache").rglob("b.safetensors")
    expert.write_bytes(b"\x00not safetensors")
    code, _, err = run_cli(
        "eval", "--method", "weight_average", "--tasks", "tiny3", "--results",
        str(tmp_path / "r"), "--quiet",
    )  # fmt: skip
    assert code == 2 and "corrupt" in err and "b.safetensors" in err
    assert len(list(record_files(tmp_path / "r"))) == 1
    assert not list((tmp_path / "r").rglob("*.lock")), "a failed run removes its lock"


def test_second_eval_shows_the_record_and_how_to_rerun(run_cli, tmp_path):
    """The quick-start command run twice: the record is shown again, exit 0, nothing runs."""
    args = ["eval", "--method", "pretrained", "--tasks", "tiny3", "--results", str(tmp_path)]
    code, first, err = run_cli(*args, "--quiet")
    assert code == 0, err
    (path,) = record_files(tmp_path)
    before = path.read_text()
    code, second, err = run_cli(*args, "--quiet")
    assert code == 0, err
    assert "already recorded" in second and "nothing was run" in second
    assert "--overwrite" in second and str(path) in second
    table = [line for line in first.splitlines() if line.startswith(("a ", "b ", "c ", "average"))]
    assert len(table) == 4 and all(line in second for line in table), "the same per-task table"
    assert path.read_text() == before, "the record is untouched"
    code, third, err = run_cli(*args, "--quiet", "--overwrite")
    assert code == 0, err
    assert "already recorded" not in third
    assert len(list(record_files(tmp_path))) == 1
    assert read_record(path)["created"] >= json.loads(before)["created"]


def test_eval_on_a_locked_cell_is_one_line_exit_2(run_cli, tmp_path):
    from harness.run.records import lock_path
    from tests.test_grid_resume import hold_lock, spec_path

    record = spec_path("pretrained", tmp_path)
    with hold_lock(record):  # a live process (this one) is running the cell
        code, out, err = run_cli(
            "eval", "--method", "pretrained", "--tasks", "tiny3", "--results", str(tmp_path),
            "--quiet",
        )  # fmt: skip
        assert lock_path(record).exists()
    assert code == 2
    assert err.count("\n") == 1 and "is being run by pid" in err and ".lock" in err
    assert not list(record_files(tmp_path))


def test_eval_reruns_a_corrupt_record_and_keeps_it_aside(run_cli, tmp_path):
    args = ["eval", "--method", "pretrained", "--tasks", "tiny3", "--results", str(tmp_path)]
    assert run_cli(*args, "--quiet")[0] == 0
    (path,) = record_files(tmp_path)
    path.write_text('{"schema_version": 1, ')  # e.g. a disk that filled up mid-copy
    code, out, err = run_cli(*args, "--quiet")
    assert code == 0, err
    assert "corrupt record" in err and path.name in err and "not valid JSON" in err
    assert "already recorded" not in out
    read_record(path)  # a valid record again
    (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert aside.read_text() == '{"schema_version": 1, '


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_leaderboard_out_that_cannot_be_written(run_cli, tmp_path, where):
    results = tmp_path / "results"
    assert run_cli("eval", "--method", "pretrained", "--tasks", "tiny3", "--results",
                   str(results), "--quiet")[0] == 0  # fmt: skip
    if where == "under_a_file":
        blocker = tmp_path / "file"
        blocker.write_text("")
        out_dir = blocker / "site"
    else:
        out_dir = Path("/proc/harness-site")
    code, out, err = run_cli("leaderboard", "build", "--results", str(results), "--out",
                             str(out_dir))  # fmt: skip
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "--out" in err
    assert not out_dir.exists()


def test_validate_an_empty_folder_says_so(run_cli, tmp_path):
    code, out, err = run_cli("validate", str(tmp_path))
    assert code == 1
    assert "no records under" in err and "check the path" in err and err.count("\n") == 1


def test_list_tasks_shows_descriptions_and_task_counts(run_cli):
    code, out, _ = run_cli("list", "tasks")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header[:3] == ["name", "tasks", "description"] and "family" not in header
    mini8 = next(line for line in out.splitlines() if line.startswith("mini8 "))
    assert mini8.split()[1] == "8" and "Eight small image tasks" in mini8
    code, out, _ = run_cli("list", "tasks", "--format", "json")
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert listed["tiny3"]["tasks"] == ["a", "b", "c"] and listed["tiny3"]["task_count"] == 3
    assert listed["vit8"]["task_count"] == 8 and "SUN397" in listed["vit8"]["description"]
    assert listed["mini8"]["metric"] == "accuracy"


def test_version_help_and_list(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and "harness" in out
    for command in (["eval"], ["grid"], ["list"], ["leaderboard", "build"], ["validate"]):
        code, out, _ = run_cli(*command, "--help")
        assert code == 0 and "Example" in out, command
    code, out, _ = run_cli("list", "methods", "--format", "json")
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert {"pretrained", "individual", "weight_average", "task_arithmetic", "ties"} <= set(listed)
    assert listed["ties"]["defaults"] == {"scaling": 1.0, "density": 0.2}
    code, out, _ = run_cli("list", "tasks")
    assert code == 0 and "tiny3" in out
