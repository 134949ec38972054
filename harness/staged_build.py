"""Resumable, reproducible builds in stages (the offline suites' data, heads, experts).

A built suite (mini8, minitext) makes its checkpoints in stages inside the resumable work
directory of :func:`harness.cache.cached_directory`. Each stage's files are written
atomically, so a rerun after an interruption keeps every finished stage and continues;
each stage starts from the global RNG seeded with the recipe's seed (and the caller's RNG
state is restored afterwards), so a resumed build writes the same bytes as one that ran
straight through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from harness.cache import atomic_path
from harness.progress import note

#: A stage's output: file name (relative to the build directory) → raw bytes, or a
#: tensor dict saved as safetensors.
StageFiles = Mapping[str, "dict[str, torch.Tensor] | bytes"]

T = TypeVar("T")


def run_stages(
    suite: str,
    directory: Path,
    stages: Sequence[str],
    done: Callable[[str], bool],
    build: Callable[[], None],
) -> None:
    """Run ``build`` (which makes the missing stages), saying whether it starts or resumes
    and, on Ctrl-C, how many stages are kept for the next run."""
    kept = [name for name in stages if done(name)]
    if kept:
        note(
            f"resuming the {suite} build: {len(kept)} of {len(stages)} stages kept from "
            f"an interrupted run (cached under {directory.parent})"
        )
    else:
        note(f"building {suite} once (minutes; cached under {directory.parent})")
    try:
        build()
    except KeyboardInterrupt:
        kept = [name for name in stages if done(name)]
        note(
            f"{suite} build interrupted; {len(kept)} of {len(stages)} stages kept in "
            f"{directory}; run the same command again to resume"
        )
        raise


def make_stage(suite: str, label: str, seed: int, make: Callable[[], T]) -> T:
    """``make()`` from the global RNG seeded with ``seed``, timed and announced."""
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        made = make()
    seconds = time.perf_counter() - started
    note(f"{suite}: {label} done in {seconds:.{0 if seconds >= 10 else 1}f} s")
    return made


def save_stage(directory: Path, files: StageFiles) -> None:
    """Write a stage's files, each atomically (so a file that exists is finished)."""
    from safetensors.torch import save_file

    for file_name, content in files.items():
        path = directory / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            if isinstance(content, bytes):
                temporary.write_bytes(content)
            else:
                save_file(content, str(temporary))


def build_stage(
    suite: str,
    directory: Path,
    expected: Sequence[Path],
    label: str,
    seed: int,
    make: Callable[[], StageFiles],
) -> None:
    """Make one stage's files with :func:`make_stage` and save them, unless an earlier
    run finished them (every ``expected`` file exists)."""
    if all(path.is_file() for path in expected):
        return
    save_stage(directory, make_stage(suite, label, seed, make))
