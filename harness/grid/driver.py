"""The grid driver: plan the cells, prepare each suite once, fan out, report.

The driver never runs a cell itself (serial aside) and never writes a record: each cell
writes its own record or failure file where the engine runs it, so a driver that dies
loses nothing but its progress display, and rerunning the same command picks up where
the cells left off. Cells already recorded are skipped here, before anything is sent out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click

from harness.errors import HarnessError, RecordError
from harness.grid.cell import DONE, FAILED, LEFT, SKIPPED, CellResult, run_grid_cell
from harness.grid.executors import Executor, Lost, SerialExecutor
from harness.grid.failures import read_failure, record_failure
from harness.grid.live import GridProgress, duration
from harness.grid.prepare import prepare_suite, suite_key
from harness.grid.summary import CellRow, label
from harness.run.records import existing_record, lock_path, release_lost_lock


@dataclass
class Cell:
    """One cell of the grid and what became of it."""

    index: int
    spec: Any  # RunSpec
    row: CellRow
    running: bool = False


def run_grid(
    specs: Sequence[Any],
    executor: Executor,
    *,
    retry_failed: bool = False,
    show_records: Callable[[dict[str, Any], Path], None] | None = None,
    bars: bool = True,
) -> list[CellRow]:
    """Run every cell of ``specs`` on ``executor``; return one summary row per cell.

    Cells with a valid record are skipped; cells with a failure file are skipped unless
    ``retry_failed``. Ctrl-C cancels the cells in flight (and raises KeyboardInterrupt).
    """
    if executor.remote:
        specs = [_portable(spec) for spec in specs]
    cells = [
        Cell(index, spec, CellRow(spec.method, spec.suite, spec.seed, "pending"))
        for index, spec in enumerate(specs, 1)
    ]
    total = len(cells)
    tag = {cell.index: f"[{cell.index}/{total}] {label(cell.row)}" for cell in cells}
    to_run = [cell for cell in cells if _still_to_run(cell, retry_failed, tag[cell.index])]
    if not to_run:
        return [cell.row for cell in cells]
    executor.start()
    try:
        if executor.remote:
            click.echo(f"running {len(to_run)} cells with {executor.describe()}")
            to_run = _prepare(executor, to_run, tag)
        _fan_out(executor, to_run, tag, show_records, bars)
    finally:
        executor.close()
    return [cell.row for cell in cells]


def _portable(spec: Any) -> Any:
    """The spec as another process on another node must see it: absolute paths."""
    if spec.device not in ("auto", "cpu", "cuda"):
        raise HarnessError(
            f"--device {spec.device}: the engine gives each cell its own GPUs; "
            "use --device auto (or cuda, or cpu)"
        )
    mirror = Path(spec.mirror).resolve() if spec.mirror is not None else None
    return dataclasses.replace(
        spec, results_dir=Path(spec.results_dir).resolve(), mirror=mirror, progress=False
    )


def _still_to_run(cell: Cell, retry_failed: bool, tag: str) -> bool:
    """Skip a recorded cell, and one that failed before unless ``retry_failed``."""
    path = cell.spec.path()
    try:
        record = existing_record(path)
    except RecordError:
        record = None  # corrupt: the cell moves it aside and runs again
    if record is not None:
        click.echo(f"{tag}: already recorded, skipped")
        cell.row.status, cell.row.average = SKIPPED, float(record["average"])
        return False
    failure = read_failure(path)
    if failure is not None and not retry_failed:
        click.echo(f"{tag}: failed before ({failure.reason}), skipped; --retry-failed reruns it")
        cell.row.status = "failed_before"
        cell.row.detail = f"{failure.reason} ({path.name}.failed)"
        return False
    return True


def _prepare(executor: Executor, cells: list[Cell], tag: dict[int, str]) -> list[Cell]:
    """One prepare job per distinct suite configuration; returns the cells still to run."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(suite_key(cell.spec), []).append(cell)
    representatives = [
        next((c.spec for c in group if c.spec.method != "individual"), group[0].spec)
        for group in groups.values()
    ]
    names = ", ".join(sorted({spec.suite for spec in representatives}))
    click.echo(f"preparing {len(representatives)} suite configuration(s) once: {names}")
    ready: list[Cell] = []
    if executor.prepares_in_driver:
        jobs = SerialExecutor().map(prepare_suite, representatives)
    else:
        jobs = executor.map(prepare_suite, representatives)
    with closing(jobs) as results:
        for index, result in results:
            group = list(groups.values())[index]
            if isinstance(result, CellResult) and result.status == DONE:
                click.echo(f"prepared {representatives[index].suite} in {duration(result.seconds)}")
                ready += group
                continue
            for cell in group:
                if isinstance(result, Lost):
                    cell.row.status, cell.row.detail = "lost", f"preparing: {result.reason}"
                else:
                    path = record_failure(
                        cell.spec.path(),
                        result.reason,
                        command=cell.spec.command(),
                        traceback=result.notes[0] if result.notes else "",
                    )
                    cell.row.status, cell.row.detail = FAILED, f"{result.reason} ({path.name})"
                click.echo(f"{tag[cell.index]}: {cell.row.status}: {cell.row.detail}")
    return sorted(ready, key=lambda cell: cell.index)


def _fan_out(
    executor: Executor,
    cells: list[Cell],
    tag: dict[int, str],
    show_records: Callable[[dict[str, Any], Path], None] | None,
    bars: bool,
) -> None:
    progress = GridProgress(len(cells), enabled=bars and executor.remote)

    def watch() -> None:
        """Cells whose lock exists are running (here, or in another grid); say so once."""
        running = 0
        for cell in cells:
            if cell.row.status != "pending":
                continue
            if lock_path(cell.spec.path()).exists():
                running += 1
                if not cell.running:
                    click.echo(f"{tag[cell.index]}: running")
            cell.running = cell.running or lock_path(cell.spec.path()).exists()
        progress.set_running(running)

    fn: Callable[[Any, str], Any] = run_grid_cell
    tick = watch
    if not executor.remote:  # in this process: each cell reports live as it goes
        fn, tick = _serial_cell(cells, tag), lambda: None
    try:
        with closing(executor.map(fn, [cell.spec for cell in cells], tick=tick)) as results:
            for position, result in results:
                cell = cells[position]
                _settle(cell, result, tag[cell.index], show_records)
                progress.finish_one(failed=cell.row.status in (FAILED, "lost"))
                if executor.remote:
                    click.echo(f"{tag[cell.index]}: {_finished_text(cell.row)} · {progress.text()}")
    except KeyboardInterrupt:
        if not executor.remote:
            raise
        for position, job in executor.killed.items():
            release_lost_lock(cells[position].spec.path(), job)
        started = sum(cell.row.status == "pending" and cell.running for cell in cells)
        click.echo(
            f"\ninterrupted: the cells in flight were cancelled ({started} had started); "
            "rerun the same command to resume",
            err=True,
        )
        raise
    finally:
        progress.close()


def _serial_cell(cells: list[Cell], tag: dict[int, str]) -> Callable[[Any, str], Any]:
    by_spec = {id(cell.spec): cell for cell in cells}

    def run(spec: Any, job: str) -> CellResult:
        cell = by_spec[id(spec)]
        say = partial(_say, tag[cell.index])
        return run_grid_cell(spec, job, on_start=lambda: say("running"), log=say)

    return run


def _say(tag: str, line: str) -> None:
    click.echo(f"{tag}: {line}")


def _settle(
    cell: Cell,
    result: Any,
    tag: str,
    show_records: Callable[[dict[str, Any], Path], None] | None,
) -> None:
    """Fill the cell's row from its result and print what happened."""
    row = cell.row
    if isinstance(result, Lost):
        released = release_lost_lock(cell.spec.path(), result.job)
        row.status = "lost"
        row.detail = result.reason + (" (its lock released)" if released else "")
        return
    for note in result.notes:
        click.echo(f"{tag}: {note}")
    row.status, row.average = result.status, result.average
    if result.status == DONE:
        row.seconds = result.seconds
        if show_records is not None and result.record is not None:
            show_records(result.record, Path(result.record_path))
    elif result.status == SKIPPED:
        if not cell.running:  # recorded by another grid meanwhile
            click.echo(f"{tag}: already recorded, skipped")
    elif result.status == LEFT:
        row.detail = result.reason
        click.echo(f"{tag}: being run by {result.reason}, skipped")
    elif result.status == FAILED:
        row.seconds = result.seconds
        row.detail = f"{result.reason} ({Path(result.failure_path).name})"
        click.echo(f"{tag}: failed: {result.reason}; details in {result.failure_path}")


def _finished_text(row: CellRow) -> str:
    if row.status == DONE:
        return f"done in {duration(row.seconds or 0)}, average {row.average:.2f}"
    if row.status == "lost":
        return f"lost: {row.detail}"
    return {FAILED: "failed", LEFT: "left to another process", SKIPPED: "recorded"}[row.status]
