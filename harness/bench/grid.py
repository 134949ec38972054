"""``harness bench grid``: what an engine costs per cell, against the serial grid.

The same cells run once per executor, each into its own fresh results directory, with
at most ``max_parallel`` cells at once (1 by default, so the difference from serial is
the engine's own cost, not parallelism): Ray's start-up, task dispatch and worker
processes; submitit's job files and one fresh Python process per cell (its imports
included). Each suite is prepared (built, experts scored, cached) before any timing, so
no executor pays a build the others find cached. Every executor must record every cell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

BENCH_EXECUTORS = ("serial", "ray", "slurm-local", "slurm-debug")


@dataclass(frozen=True)
class GridTiming:
    """One executor's run of the cells: wall time from engine start to the last record."""

    executor: str
    cells: int
    wall_s: float
    start_s: float  # starting (or connecting to) the engine, within wall_s

    @property
    def per_cell_s(self) -> float:
        return (self.wall_s - self.start_s) / self.cells


def make_bench_executor(name: str, max_parallel: int, folder: Path) -> Any:
    from harness.grid.executors import make_executor

    if name == "serial":
        return make_executor("serial")
    if name == "ray":
        return make_executor("ray", max_parallel=max_parallel)
    if name in ("slurm-local", "slurm-debug"):
        return make_executor(
            "slurm",
            slurm_cluster=name.split("-", 1)[1],
            slurm_folder=folder,
            max_parallel=max_parallel,
        )
    raise HarnessError(f"--executors takes {', '.join(BENCH_EXECUTORS)}; got {name!r}")


def bench_grid(
    specs: Sequence[Any],
    executors: Sequence[str],
    workdir: Path,
    *,
    max_parallel: int = 1,
    log: Any = None,
) -> list[GridTiming]:
    """Run ``specs`` with each executor; the first executor is the baseline."""
    from harness.grid.driver import run_grid
    from harness.grid.prepare import prepare_suite, suite_key

    for name in executors:  # unknown names fail before anything runs
        make_bench_executor(name, max_parallel, workdir / "unused")
    seen = set()
    for spec in specs:
        if suite_key(spec) not in seen:
            seen.add(suite_key(spec))
            result = prepare_suite(spec)
            if result.status != "done":
                raise HarnessError(f"cannot prepare {spec.suite}: {result.reason}")
    timings = []
    for name in executors:
        results = Path(workdir) / name
        cells = [dataclasses.replace(spec, results_dir=results, progress=False) for spec in specs]
        engine = make_bench_executor(name, max_parallel, results / ".submitit")
        output = io.StringIO()
        started = time.perf_counter()
        engine.start()
        start_s = time.perf_counter() - started
        with contextlib.redirect_stdout(output):
            rows = run_grid(cells, engine, bars=False)
        wall_s = time.perf_counter() - started
        bad = [f"{row.method}: {row.status} {row.detail}" for row in rows if row.status != "done"]
        if bad:
            raise HarnessError(f"{name} did not run every cell ({'; '.join(bad)}); see {results}")
        timings.append(GridTiming(name, len(cells), wall_s, start_s))
        if log is not None:
            log(f"{name}: {len(cells)} cells in {wall_s:.1f} s (engine start {start_s:.1f} s)")
    return timings


def describe(timings: Sequence[GridTiming]) -> list[dict[str, Any]]:
    """Rows against the first (baseline) executor: overhead per cell and ratios."""
    base = timings[0]
    return [
        {
            "executor": t.executor,
            "cells": t.cells,
            "wall_s": round(t.wall_s, 2),
            "start_s": round(t.start_s, 2),
            "per_cell_s": round(t.per_cell_s, 2),
            "overhead_per_cell_s": round(t.per_cell_s - base.per_cell_s, 2),
            "ratio_per_cell": round(t.per_cell_s / base.per_cell_s, 2),
            "ratio_wall": round(t.wall_s / base.wall_s, 2),
        }
        for t in timings
    ]


def format_table(timings: Sequence[GridTiming]) -> list[str]:
    rows = describe(timings)
    header = ["executor", "cells", "wall s", "start s", "per cell s", "overhead/cell s"]
    header += ["ratio/cell", "ratio wall"]
    table = [header] + [[str(value) for value in row.values()] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
