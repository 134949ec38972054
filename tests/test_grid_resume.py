"""Grids sharing one results directory: cell locks, stale locks, corrupt records.

Two ``harness grid`` processes over one ``--results`` must each skip what the other
recorded or is running, and a corrupt record is moved aside and its cell run again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from harness.errors import CellLockedError
from harness.run.records import cell_lock, lock_path, read_record, record_files, set_aside
from tests.test_runner_cli import invoke

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(monkeypatch, capsys, tiny_suite_name):
    return lambda *args: invoke(monkeypatch, capsys, *args)


def spec_path(method: str, results: Path) -> Path:
    """Where the CLI's default run of ``method`` on tiny3 is recorded."""
    from harness.run.runner import RunSpec

    return RunSpec(method=method, suite="tiny3", results_dir=results).path()


def hold_lock(record: Path) -> AbstractContextManager:
    """The cell's lock, held by this (live) process: what a grid elsewhere looks like."""
    return cell_lock(record, command="harness grid (the other process)")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def grid_args(results: Path, methods: str = "pretrained,weight_average") -> list[str]:
    return ["grid", "--methods", methods, "--tasks", "tiny3", "--results", str(results), "--quiet"]


def test_grid_skips_a_cell_a_live_process_is_running(run_cli, tmp_path):
    locked = spec_path("pretrained", tmp_path)
    with hold_lock(locked):
        held = lock_path(locked).read_text()
        code, out, err = run_cli(*grid_args(tmp_path))
        assert lock_path(locked).read_text() == held, "another process's lock is not touched"
    assert code == 0, err
    assert f"pretrained on tiny3 (seed 0): being run by pid {os.getpid()}" in out
    assert "weight_average on tiny3 (seed 0): running" in out
    assert "grid finished: 1 run, 0 already recorded, 1 left to other processes" in out
    assert f"  pretrained on tiny3 (seed 0): pid {os.getpid()} on {socket.gethostname()}" in out
    assert [read_record(p)["method"]["name"] for p in record_files(tmp_path)] == ["weight_average"]
    assert not lock_path(locked).exists(), "the holder removes its lock when it is done"


def test_a_stale_lock_is_taken_over(run_cli, tmp_path):
    record = spec_path("pretrained", tmp_path)
    lock = lock_path(record)
    lock.parent.mkdir(parents=True)
    owner = {"pid": dead_pid(), "host": socket.gethostname(), "created": "2026-01-01T00:00:00"}
    lock.write_text(json.dumps(owner))
    code, out, err = run_cli(*grid_args(tmp_path, "pretrained"))
    assert code == 0, err
    assert "pretrained on tiny3 (seed 0): running" in out
    assert read_record(record)["method"]["name"] == "pretrained"
    assert not lock.exists()


def test_a_lock_from_another_host_is_respected(tmp_path):
    lock = lock_path(tmp_path / "cell.json")
    owner = {"pid": dead_pid(), "host": "not-" + socket.gethostname(), "created": "t"}
    lock.write_text(json.dumps(owner))
    with pytest.raises(CellLockedError, match="on not-"), cell_lock(tmp_path / "cell.json"):
        pass
    assert json.loads(lock.read_text()) == owner


def test_an_unreadable_lock_is_live_while_young_and_stale_when_old(tmp_path):
    record = tmp_path / "cell.json"
    lock = lock_path(record)
    lock.write_text("")  # created by O_EXCL, its owner not yet written
    starting = pytest.raises(CellLockedError, match="a process that is starting it")
    with starting, cell_lock(record):
        pass
    old = time.time() - 3600
    os.utime(lock, (old, old))  # its writer died between create and write
    with cell_lock(record) as owner:
        assert json.loads(lock.read_text())["token"] == owner.token
    assert not lock.exists()


def test_only_one_of_many_racing_lockers_wins(tmp_path):
    record = tmp_path / "cell.json"
    start = threading.Barrier(8)
    won, refused = [], []
    release = threading.Event()

    def contend() -> None:
        start.wait()
        try:
            with cell_lock(record):
                won.append(1)
                release.wait(5)
        except CellLockedError:
            refused.append(1)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(refused) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert (len(won), len(refused)) == (1, 7)
    assert not lock_path(record).exists()


def test_releasing_never_removes_a_lock_that_is_not_ours(tmp_path):
    record = tmp_path / "cell.json"
    with cell_lock(record):
        lock_path(record).write_text(json.dumps({"pid": 1, "host": "elsewhere", "created": "t"}))
    assert lock_path(record).exists(), "someone replaced our lock: theirs stays"


def test_grid_reruns_a_corrupt_record_and_keeps_it_aside(run_cli, tmp_path):
    assert run_cli(*grid_args(tmp_path))[0] == 0
    corrupt = spec_path("weight_average", tmp_path)
    kept = spec_path("pretrained", tmp_path).read_text()
    corrupt.write_text(json.dumps({"schema_version": 1, "seed": "zero"}))
    code, out, err = run_cli(*grid_args(tmp_path))
    assert code == 0, err
    assert "pretrained on tiny3 (seed 0): already recorded, skipped" in out
    line = next(line for line in out.splitlines() if "corrupt record" in line)
    assert corrupt.name in line and "(top level)" in line and ".corrupt-" in line
    assert "weight_average on tiny3 (seed 0): running" in out
    assert "grid finished: 1 run, 1 already recorded" in out
    assert read_record(corrupt)["method"]["name"] == "weight_average"
    (aside,) = corrupt.parent.glob(f"{corrupt.name}.corrupt-*")
    assert json.loads(aside.read_text()) == {"schema_version": 1, "seed": "zero"}
    assert spec_path("pretrained", tmp_path).read_text() == kept


def test_setting_aside_never_overwrites_an_earlier_one(tmp_path):
    first = tmp_path / "r.json"
    first.write_text("one")
    aside_one = set_aside(first)
    first.write_text("two")
    aside_two = set_aside(first)
    assert aside_one != aside_two and not first.exists()
    assert {aside_one.read_text(), aside_two.read_text()} == {"one", "two"}
    assert not list(record_files(tmp_path)), "set-aside files are not read as records"


PLUGIN = """
from harness.registry import SUITES, Entry
from tests.tiny_suite import TinySuite

TinySuite.name = "tiny3"
SUITES.add(Entry(name="tiny3", kind="suite", obj=TinySuite, family="suite", module=__name__))
"""


@pytest.mark.slow  # two fresh interpreters importing torch: ~20-40 s on 2 cores
def test_two_grid_processes_share_one_results_directory(tmp_path, tiny_suite_name):
    """Two real `harness grid` processes at once: every cell is run exactly once."""
    from harness.suite import SuiteContext
    from tests.tiny_suite import TinySuite

    TinySuite(SuiteContext(progress=False)).prepare()  # build the cache once, beforehand
    (tmp_path / "tiny3_plugin.py").write_text(PLUGIN)
    env = {
        **os.environ,
        "HARNESS_PLUGINS": "tiny3_plugin",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
    }
    results = tmp_path / "results"
    methods = "pretrained,weight_average,task_arithmetic,ties"
    command = [sys.executable, "-m", "harness", *grid_args(results, methods), "--select"]
    command.append("defaults")
    grids = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [grid.communicate(timeout=300)[0] for grid in grids]
    assert [grid.returncode for grid in grids] == [0, 0], outputs
    for method in methods.split(","):
        ran = sum(out.count(f"{method} on tiny3 (seed 0): running") for out in outputs)
        assert ran == 1, (method, outputs)  # never twice, and never left undone
    recorded = sorted(read_record(p)["method"]["name"] for p in record_files(results))
    assert recorded == sorted(methods.split(","))
    assert not list(results.rglob("*.lock")) and all("grid finished" in o for o in outputs)
