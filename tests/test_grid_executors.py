"""The grid on Ray and on Slurm (submitit), run for real on CPU with the tiny suite.

Ray runs locally with logical GPUs (``ray.init(num_cpus=2, num_gpus=2)``), started once
for the module; submitit runs its ``local`` executor (a process per cell). Workers import
the test suite and the misbehaving methods of tests/grid_cells.py through HARNESS_PLUGINS.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.grid.cell import DONE
from harness.grid.failures import failure_path, read_failure
from harness.registry import METHODS, SUITES
from harness.run.records import (
    cell_lock,
    lock_path,
    read_record,
    record_files,
    release_lost_lock,
)
from tests.conftest import register_for_test
from tests.grid_cells import METHOD_ENTRIES, TinyGridSuite, crash_marker, fail_flag
from tests.harness_cli import invoke

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "tests.grid_plugin"
VARYING = ("created", "timings", "peak_memory")  # differ run to run


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs and 2 logical GPUs, for the whole module (start-up is slow)."""
    ray = pytest.importorskip("ray")
    SUITES.discover()  # before HARNESS_PLUGINS is set: the test process registers per test
    METHODS.discover()
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "HARNESS_PLUGINS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    os.environ["HARNESS_PLUGINS"] = PLUGIN  # Ray's workers inherit the environment
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def grid_cells(monkeypatch, capsys):
    """tinygrid and the test methods registered here, and named to every worker."""
    SUITES.discover()
    METHODS.discover()
    register_for_test(monkeypatch, "tinygrid", TinyGridSuite)
    for entry in METHOD_ENTRIES:
        monkeypatch.setitem(METHODS._entries, entry.name, entry)
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    monkeypatch.setenv("HARNESS_PLUGINS", PLUGIN)
    fail_flag().unlink(missing_ok=True)
    crash_marker().unlink(missing_ok=True)
    return lambda *args: invoke(monkeypatch, capsys, *args)


def grid(results: Path, methods: str, *extra: str) -> list[str]:
    return [
        "grid", "--methods", methods, "--tasks", "tinygrid", "--select", "defaults",
        "--results", str(results), "--quiet", *extra,
    ]  # fmt: skip


needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None, reason="the slurm extra is not installed"
)
LOCAL = ("--executor", "slurm", "--slurm-cluster", "local", "--max-parallel", "2")


def records(results: Path) -> dict[str, dict]:
    """run_id → record without the fields that differ from run to run.

    The environment stays (same harness commit and packages in every worker) but for its
    device, which names the CPU threads the cell had (Ray gives a cell one CPU).
    """
    found = {}
    for path in record_files(results):
        record = read_record(path)
        record["environment"].pop("device")
        found[record["run_id"]] = {k: v for k, v in record.items() if k not in VARYING}
    return found


def leftovers(results: Path) -> list[Path]:
    """Locks, half-written temporaries or set-aside files: none may stay behind."""
    return [
        path
        for path in results.rglob("*")
        if ".submitit" not in path.parts
        and (path.name.endswith(".lock") or ".corrupt-" in path.name or path.name[0] == ".")
    ]


@pytest.mark.slow  # Ray's start-up and one process per submitit cell: about a minute idle
@needs_submitit
def test_serial_ray_and_submitit_write_the_same_records(grid_cells, ray_cluster, tmp_path):
    methods = "pretrained,weight_average"
    code, out, err = grid_cells(*grid(tmp_path / "serial", methods))
    assert code == 0, err
    code, out, err = grid_cells(*grid(tmp_path / "ray", methods, "--executor", "ray"))
    assert code == 0, out + err
    assert "running 2 cells with ray on this machine, 1 GPU per cell" in out
    assert "preparing 1 suite configuration(s) once: tinygrid" in out
    code, out, err = grid_cells(*grid(tmp_path / "slurm", methods, *LOCAL))
    assert code == 0, out + err
    assert "submitit's local executor" in out
    serial = records(tmp_path / "serial")
    assert len(serial) == 2
    for engine in ("ray", "slurm"):
        found = records(tmp_path / engine)
        assert sorted(found) == sorted(serial), engine  # the same run ids
        for run_id, record in serial.items():
            for key in record:
                assert found[run_id][key] == record[key], (engine, run_id, key)
    assert "grid finished: 2 run, 0 already recorded" in out
    for results in ("serial", "ray", "slurm"):
        assert not leftovers(tmp_path / results)


@pytest.mark.slow
def test_on_ray_a_failing_cell_and_a_killed_worker_do_not_stop_the_grid(
    grid_cells, ray_cluster, tmp_path
):
    fail_flag().parent.mkdir(parents=True, exist_ok=True)
    fail_flag().write_text("")
    methods = "fails_while_flagged,crash_once,pretrained"
    code, out, err = grid_cells(*grid(tmp_path, methods, "--executor", "ray"))
    assert code == 1, out + err  # a failed cell: the grid says so in its exit status
    assert crash_marker().exists(), "crash_once killed its worker once"
    recorded = sorted(read_record(p)["method"]["name"] for p in record_files(tmp_path))
    assert recorded == ["crash_once", "pretrained"], out  # Ray retried the killed worker
    (failure,) = tmp_path.rglob("*.json.failed")
    saved = read_failure(failure.with_name(failure.name.removesuffix(".failed")))
    assert saved.reason == "RuntimeError: deliberate failure of a test cell"
    assert "Traceback" in saved.traceback and saved.job.startswith("ray:")
    assert saved.command.startswith("harness eval --method fails_while_flagged --tasks tinygrid")
    assert "grid finished: 2 run, 0 already recorded, 1 failed" in out
    assert "FAILED" in out and "fails_while_flagged on tinygrid (seed 0): RuntimeError" in out
    assert not leftovers(tmp_path)

    # a plain rerun skips the recorded cells and the failed one (it would fail again)
    code, out, err = grid_cells(*grid(tmp_path, methods))
    assert code == 1
    assert "fails_while_flagged on tinygrid (seed 0): failed before (RuntimeError" in out
    assert "grid finished: 0 run, 2 already recorded, 1 failed before" in out
    # --retry-failed runs it again; still failing, in this process, the grid goes on
    code, out, err = grid_cells(*grid(tmp_path, methods, "--retry-failed"))
    assert code == 1 and "fails_while_flagged on tinygrid (seed 0): failed: Runtime" in out
    fail_flag().unlink()
    code, out, err = grid_cells(*grid(tmp_path, methods, "--retry-failed"))
    assert code == 0, out + err
    assert "grid finished: 1 run, 2 already recorded" in out
    assert not list(tmp_path.rglob("*.failed")), "a cell that succeeds drops its failure file"
    assert len(list(record_files(tmp_path))) == 3


@pytest.mark.slow
@needs_submitit
def test_a_killed_submitit_job_is_lost_and_the_same_command_resumes(grid_cells, tmp_path):
    code, out, err = grid_cells(*grid(tmp_path, "crash_once", *LOCAL))
    assert code == 1, out + err
    assert "grid finished: 0 run, 0 already recorded, 1 lost with their worker" in out
    assert "crash_once on tinygrid (seed 0): " in out and "LOST" in out
    assert crash_marker().exists() and not list(record_files(tmp_path))
    assert not list(tmp_path.rglob("*.failed")), "a lost cell is not a failed one"
    assert not leftovers(tmp_path), "the lost job's lock is released by the driver"
    code, out, err = grid_cells(*grid(tmp_path, "crash_once", *LOCAL))
    assert code == 0, out + err
    assert "grid finished: 1 run, 0 already recorded" in out
    assert [read_record(p)["method"]["name"] for p in record_files(tmp_path)] == ["crash_once"]
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_ray_gives_each_cell_its_share_of_a_gpu(grid_cells, ray_cluster, tmp_path):
    """Half a (logical) GPU per cell: Ray names the cell's GPU in CUDA_VISIBLE_DEVICES."""
    code, out, err = grid_cells(
        *grid(tmp_path, "gpu_report", "--executor", "ray", "--gpus-per-cell", "0.5")
    )
    assert code == 0, out + err
    assert "0.5 GPU per cell" in out
    (path,) = record_files(tmp_path)
    assert read_record(path)["method_info"]["cuda_visible_devices"] in ("0", "1")
    code, out, err = grid_cells(
        *grid(tmp_path / "more", "gpu_report", "--executor", "ray", "--gpus-per-cell", "3")
    )
    assert code == 2 and "--gpus-per-cell 3 but the Ray cluster has 2 GPUs" in err


@pytest.mark.slow
def test_two_grids_at_once_share_one_results_directory(grid_cells, ray_cluster, tmp_path):
    """A Ray grid and a serial grid over one --results: every cell recorded once.

    The serial grid runs in this process (a thread), the Ray grid's cells in Ray's worker
    processes, both over the same cells at the same moment.
    """
    from harness.commands.options import split_names
    from harness.grid.driver import run_grid
    from harness.grid.executors import make_executor
    from harness.run.runner import RunSpec

    methods = split_names("pretrained,weight_average,task_arithmetic,ties", "methods")
    specs = [
        RunSpec(method=m, suite="tinygrid", select="defaults", results_dir=tmp_path)
        for m in methods
    ]
    engines = [make_executor("ray"), make_executor("serial")]
    rows: list = [None, None]
    problems: list = []

    def run(which: int) -> None:
        try:
            rows[which] = run_grid(specs, engines[which], bars=False)
        except BaseException as error:  # noqa: BLE001 (reported below)
            problems.append(error)

    threads = [threading.Thread(target=run, args=(which,)) for which in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not problems, problems
    for index, method in enumerate(methods):
        statuses = sorted(rows[which][index].status for which in (0, 1))
        assert statuses.count(DONE) == 1, (method, statuses)  # run once, not twice
        assert set(statuses) <= {DONE, "skipped", "left"}, (method, statuses)
    recorded = [read_record(path)["method"]["name"] for path in record_files(tmp_path)]
    assert sorted(recorded) == sorted(methods)
    assert not leftovers(tmp_path)


@needs_submitit
def test_bench_grid_reports_each_executor_against_serial(grid_cells, tmp_path):
    code, out, err = grid_cells(
        "bench", "grid", "--methods", "pretrained", "--tasks", "tinygrid",
        "--executors", "serial,slurm-debug", "--workdir", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    serial, debug = json.loads(out)
    assert (serial["executor"], debug["executor"]) == ("serial", "slurm-debug")
    assert serial["ratio_per_cell"] == 1.0 and serial["overhead_per_cell_s"] == 0.0
    assert debug["cells"] == 1 and debug["wall_s"] > 0 and debug["ratio_wall"] > 0
    for name in ("serial", "slurm-debug"):
        assert len(list(record_files(tmp_path / name))) == 1


def test_a_missing_engine_is_one_line_naming_the_install(grid_cells, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, out, err = grid_cells(*grid(tmp_path, "pretrained", "--executor", "ray"))
    assert code == 2
    assert err.strip() == (
        "error: --executor ray needs ray, which is not installed; "
        "pip install 'merging-harness[ray]'"
    )
    assert not tmp_path.exists() or not list(record_files(tmp_path))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--gpus-per-cell", "1"), "--gpus-per-cell only apply with --executor ray or slurm"),
        (("--executor", "slurm", "--slurm-cluster", "local", "--gpus-per-cell", "0.5"),
         "Slurm allocates whole GPUs; to pack several cells on one GPU use --executor ray"),
        (("--executor", "slurm", "--time", "soon"), "--time expects minutes"),
        (("--executor", "ray", "--partition", "gpu"), "--partition and --time are Slurm"),
    ],
)  # fmt: skip
def test_engine_options_are_checked_before_anything_runs(grid_cells, tmp_path, extra, message):
    code, out, err = grid_cells(*grid(tmp_path, "pretrained", *extra))
    assert code == 2 and message in err, err
    assert not list(record_files(tmp_path))


@needs_submitit
def test_slurm_without_sbatch_says_where_to_run(grid_cells, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code, out, err = grid_cells(*grid(tmp_path, "pretrained", "--executor", "slurm"))
    assert code == 2 and "needs sbatch, which is not on PATH" in err


def test_slurm_time_limits_read_as_sbatch_reads_them():
    from harness.grid.executors.slurm import parse_time

    assert [parse_time(t) for t in ("90", "1:30", "2:00:00", "1-0", "1-2:30")] == [
        90, 2, 120, 1440, 1590
    ]  # fmt: skip
    with pytest.raises(HarnessError):
        parse_time("0")


def test_a_retried_job_takes_its_own_lock_over_and_a_lost_job_lock_is_released(tmp_path):
    record = tmp_path / "cell.json"
    lock = lock_path(record)
    elsewhere = {"pid": 1, "host": "another-node", "created": "t", "job": "submitit:42_3"}
    lock.write_text(json.dumps(elsewhere))  # a job whose node died mid-cell
    with pytest.raises(HarnessError, match="another-node"), cell_lock(record, job="ray:1"):
        pass
    with cell_lock(record, job="submitit:42_3") as owner:  # its requeued attempt
        assert json.loads(lock.read_text())["token"] == owner.token
    lock.write_text(json.dumps(elsewhere))
    assert not release_lost_lock(record, "submitit:41_0"), "another job's lock stays"
    assert lock.exists()
    assert release_lost_lock(record, "submitit:42_3") and not lock.exists()
    assert failure_path(record).name == "cell.json.failed"


class BrokenSuite(TinyGridSuite):
    """A suite whose build fails: every cell of it must fail, once, before fan-out."""

    prepared = 0

    def prepare(self) -> None:
        type(self).prepared += 1
        raise HarnessError("the mirror lacks this suite's checkpoints; pass --mirror DIR")


@needs_submitit
def test_a_suite_that_cannot_be_prepared_fails_its_cells_before_fan_out(
    grid_cells, monkeypatch, tmp_path
):
    register_for_test(monkeypatch, "broken3", BrokenSuite)
    args = grid(tmp_path, "pretrained,weight_average", "--executor", "slurm")
    args[args.index("tinygrid")] = "tinygrid,broken3"
    code, out, err = grid_cells(*args, "--slurm-cluster", "debug")
    assert code == 1, out + err
    assert BrokenSuite.prepared == 1, "one prepare for the suite, not one per cell"
    assert "grid finished: 2 run, 0 already recorded, 2 failed" in out
    failures = sorted(tmp_path.rglob("*.json.failed"))
    assert [path.parent.name for path in failures] == ["pretrained", "weight_average"]
    assert all(path.parent.parent.name == "broken3" for path in failures)
    reason = read_failure(failures[0].with_suffix(""))
    assert reason.reason == (
        "preparing broken3 failed: HarnessError: the mirror lacks this suite's checkpoints; "
        "pass --mirror DIR"
    )
    assert "Traceback" in reason.traceback


def test_progress_counts_and_eta():
    from harness.grid.live import GridProgress, duration

    assert [duration(s) for s in (41, 185, 7440)] == ["41s", "3m 05s", "2h 04m"]
    progress = GridProgress(4, enabled=False)
    assert progress.text() == "0/4 finished, 0 running, 0 failed"
    progress.started -= 10  # one cell done after 10 s: three more take about 30 s
    progress.finish_one(failed=True)
    progress.set_running(2)
    assert progress.text().startswith("1/4 finished, 2 running, 1 failed, ETA ")
    assert 25 <= progress.eta_s() <= 35


@needs_submitit
def test_slurm_options_become_the_array_sbatch_lines(monkeypatch, tmp_path):
    """What sbatch would get, read from submitit's own submission file (no Slurm here)."""
    import shutil

    from harness.grid.executors import Resources, make_executor

    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: f"/usr/bin/{name}")
    engine = make_executor(
        "slurm",
        resources=Resources(gpus=1, cpus=8, mem_gb=32),
        partition="gpu",
        time="2:00:00",
        slurm_folder=tmp_path,
        max_parallel=16,
    )
    engine.start()
    slurm = engine._executor._executor  # submitit's SlurmExecutor inside its AutoExecutor
    script = slurm._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--time=120", "--gpus-per-node=1", "--cpus-per-task=8"):
        assert f"#SBATCH {line}\n" in script
    assert "#SBATCH --mem=32GB\n" in script
    assert "#SBATCH --signal=USR2@90\n" in script  # pre-emption warning: submitit requeues
    assert slurm.parameters["array_parallelism"] == 16
