"""Interrupted and concurrent cache builds, progress output off a terminal, thread settings.

The resumption test kills a reduced mini8 build (``SMALL_RECIPE``, seconds instead of
minutes) through the real CLI with SIGTERM after its pretrain stage is saved, resumes it,
and compares every file with an uninterrupted build's, byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness import cache, progress, threads

ROOT = Path(__file__).resolve().parents[1]
SMALL_RECIPE = dict(
    hidden_size=16, layers=1, heads=2, pretrain_steps=10, finetune_steps=10, batch_size=32
)
# The CLI with mini8's recipe shrunk: what a user runs, on a build that takes seconds.
SMALL_CLI = f"""
from harness.threads import configure_threads
configure_threads()  # as the CLI does, before torch loads (the recipe import loads it)
import sys
from tasks.vision.mini8 import build, suite
suite.RECIPE = build.Recipe(**{SMALL_RECIPE!r})
from harness.cli import main
sys.argv = ["harness", *sys.argv[1:]]
main()
"""


def _harness(cache_root: Path, results: Path) -> subprocess.Popen:
    env = dict(os.environ, HARNESS_CACHE=str(cache_root), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-c", SMALL_CLI, "eval", "--method", "weight_average"]
    command += ["--tasks", "mini8", "--results", str(results)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_sigterm_keeps_finished_stages_and_the_resumed_build_is_bitwise_identical(tmp_path):
    # uninterrupted reference build
    straight = _harness(tmp_path / "straight", tmp_path / "results-straight")
    out, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err
    assert "building mini8 once (minutes; cached under" in err
    assert "\r" not in err, "progress bars were written to a redirected stderr"
    (reference,) = (tmp_path / "straight" / "mini8").iterdir()

    # the same build, terminated once its pretrain stage is on disk
    cache_root = tmp_path / "resumed"
    run = _harness(cache_root, tmp_path / "results-resumed")
    deadline = time.monotonic() + 600
    while not list((cache_root / "mini8").glob(".*.partial/base.safetensors")):
        assert run.poll() is None, run.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "mini8 build interrupted;" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    (partial,) = (cache_root / "mini8").glob(".*.partial")
    kept = {p.name for p in partial.iterdir()}
    assert {"data.safetensors", "base.safetensors"} <= kept
    assert len(kept) < len(list(reference.iterdir())), "killed too late to test resumption"
    assert not [p for p in partial.iterdir() if p.name.startswith(".")], "temporary left"

    resumed = _harness(cache_root, tmp_path / "results-resumed")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"resuming the mini8 build: {len(kept)} of 11 stages kept" in err
    assert "mini8: pretrained tower" not in err  # loaded, not trained again
    # same key, same bytes; nothing hidden left behind in the namespace
    assert sorted(p.name for p in (cache_root / "mini8").iterdir()) == [reference.name]
    assert _files(cache_root / "mini8" / reference.name) == _files(reference)


def _owned_temporary(directory: Path, name: str, owner: dict) -> Path:
    folder = directory / f".{name}.abc123"
    folder.mkdir(parents=True)
    (folder / ".owner.json").write_text(json.dumps(owner))
    (folder / name).write_text("half written")
    return folder


def test_stale_temporaries_go_live_ones_stay(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = cache._owner()
    gone = _owned_temporary(tmp_path, "a", dict(me, pid=dead.pid))
    reused_pid = _owned_temporary(tmp_path, "b", dict(me, start="1"))  # same pid, other start
    live = _owned_temporary(tmp_path, "c", me)
    elsewhere = _owned_temporary(tmp_path, "d", dict(me, host="another-host"))
    legacy = tmp_path / ".e.xyz"  # from a version that recorded no owner
    legacy.mkdir()
    old = time.time() - cache.STALE_AFTER_S - 60
    legacy_old = tmp_path / ".f.xyz"
    (legacy_old / "f").mkdir(parents=True)
    for path in (legacy_old, legacy_old / "f"):
        os.utime(path, (old, old))

    removed = cache.remove_stale_temporaries(tmp_path)

    assert sorted(removed) == sorted([gone, reused_pid, legacy_old])
    for path in (live, elsewhere, legacy):
        assert path.is_dir()


def test_a_partial_build_stays_while_locked_or_recent(tmp_path):
    partial = tmp_path / ".k.partial"
    partial.mkdir()
    lock = tmp_path / ".k.lock"
    old = time.time() - cache.PARTIAL_KEPT_S - 60
    os.utime(partial, (old, old))
    with cache._exclusive(lock):
        assert cache.remove_stale_temporaries(tmp_path) == []  # a live build holds it
    recent = tmp_path / ".r.partial"
    recent.mkdir()
    assert cache.remove_stale_temporaries(tmp_path) == [partial]
    assert recent.is_dir() and not lock.exists()


def test_an_interrupted_resumable_build_resumes_in_the_same_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    calls = []

    def build(directory: Path) -> None:
        calls.append(sorted(p.name for p in directory.iterdir()))
        if not (directory / "one").exists():
            with cache.atomic_path(directory / "one") as temporary:
                temporary.write_text("1")
            raise KeyboardInterrupt
        (directory / "two").write_text("2")

    with pytest.raises(KeyboardInterrupt):
        cache.cached_directory("key", build, namespace="n", resumable=True)
    final = cache.cached_directory("key", build, namespace="n", resumable=True)
    assert calls == [[], ["one"]]
    assert sorted(p.name for p in final.iterdir()) == ["one", "two"]
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["key"]


def test_a_failed_plain_build_leaves_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))

    def build(directory: Path) -> None:
        (directory / "x").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached_directory("key", build, namespace="n")
    assert list((tmp_path / "n").iterdir()) == []


def test_bars_only_on_a_terminal_notes_always(monkeypatch, capsys):
    class Stream:
        def __init__(self, tty: bool):
            self.tty, self.text = tty, []

        def isatty(self) -> bool:
            return self.tty

        def write(self, text: str | bytes) -> int:
            self.text.append(text.decode() if isinstance(text, bytes) else text)
            return len(text)

        def flush(self) -> None:
            pass

    redirected = Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", redirected)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    items = list(range(3))
    assert not progress.bars_enabled()
    bar = progress.progress_bar(items, desc="x")
    assert list(bar) == items and not hasattr(bar, "n")  # a plain iterator, no tqdm
    progress.note("stage done")
    assert "".join(redirected.text) == "stage done\n"

    monkeypatch.setattr(sys, "stderr", Stream(tty=True))
    assert progress.bars_enabled()
    try:
        progress.set_enabled(False)
        assert not progress.bars_enabled()
    finally:
        progress.set_enabled(True)


def test_library_bars_follow_the_switch_unless_the_user_set_them(monkeypatch):
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # the user's own choice
    monkeypatch.setattr(progress, "_SET_BY_US", set())
    for name in ("huggingface_hub", "datasets", "transformers"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # not imported yet: env only
    progress._set_library_bars(False)
    assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
    progress._set_library_bars(True)
    assert "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"


def test_thread_settings_fill_only_what_the_user_left_unset(tmp_path):
    environ: dict[str, str] = {}
    assert threads.configure_threads(environ, cpus=os.cpu_count() or 1) == {
        "GOMP_SPINCOUNT": "10000"
    }
    assert threads.configure_threads({"GOMP_SPINCOUNT": "1000"}, cpus=os.cpu_count() or 1) == {}
    if (os.cpu_count() or 1) > 1:
        capped = threads.configure_threads({"OMP_WAIT_POLICY": "ACTIVE"}, cpus=1)
        assert capped == {name: "1" for name in threads.COUNT_VARIABLES}
        assert threads.configure_threads({"MKL_NUM_THREADS": "4"}, cpus=1) == {
            "GOMP_SPINCOUNT": "10000"
        }


def test_cgroup_quota_is_read_in_both_layouts(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_quota(tmp_path) == 1.5
    assert threads.usable_cpus(quota=1.5) == min(2, threads.usable_cpus(quota=1e9))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_quota(tmp_path) == 2.0


def test_the_cli_configures_threads_before_torch_loads(tmp_path):
    probe = (
        "import os, sys\n"
        "from harness import cli\n"
        "sys.argv = ['harness', '--version']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in threads.WAIT_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.stdout.split()[-2:] == ["False", "10000"], out.stderr


@pytest.mark.parametrize("resumable", [True, False])
def test_a_second_build_of_the_same_key_waits_and_reuses_the_first(
    tmp_path, monkeypatch, resumable
):
    """Resumable or not: the second process never rebuilds (and so never replaces a
    directory the first may be reading)."""
    import threading

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    started, release, waited, builds = threading.Event(), threading.Event(), [], []

    def build(directory: Path) -> None:
        builds.append(directory)
        started.set()
        assert release.wait(30)
        with cache.atomic_path(directory / "done") as temporary:
            temporary.write_text("ok")

    results: list[Path] = []

    def first() -> None:
        results.append(cache.cached_directory("k", build, namespace="n", resumable=resumable))

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(30)
    second = threading.Thread(
        target=lambda: results.append(
            cache.cached_directory(
                "k", build, namespace="n", resumable=resumable, on_wait=lambda: waited.append(1)
            )
        )
    )
    second.start()
    deadline = time.monotonic() + 30
    while not waited and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    thread.join(30)
    second.join(30)
    assert waited == [1] and len(builds) == 1
    assert results == [tmp_path / "n" / "k"] * 2
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["k"]


def test_build_stage_writes_bytes_and_tensors_and_skips_a_finished_stage(tmp_path):
    from safetensors.torch import load_file

    from harness.staged_build import build_stage

    calls = []

    def make():
        calls.append(torch.rand(1))  # seeded: the same draw every time
        return {"sub/data.bin": b"abc", "w.safetensors": {"w": torch.arange(3.0)}}

    expected = [tmp_path / "sub" / "data.bin", tmp_path / "w.safetensors"]
    build_stage("suite", tmp_path, expected, "stage", 7, make)
    assert (tmp_path / "sub" / "data.bin").read_bytes() == b"abc"
    assert load_file(str(tmp_path / "w.safetensors"))["w"].tolist() == [0.0, 1.0, 2.0]
    build_stage("suite", tmp_path, expected, "stage", 7, make)  # finished: not made again
    assert len(calls) == 1
    (tmp_path / "w.safetensors").unlink()
    build_stage("suite", tmp_path, expected, "stage", 7, make)
    assert len(calls) == 2 and torch.equal(calls[0], calls[1])
