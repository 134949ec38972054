"""The grid's closing report: one row per cell, and the counts that say what to do next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from harness.commands.options import print_table

# The status column: what happened to a cell in this grid.
STATUS_TEXT = {
    "done": "done",
    "skipped": "recorded",
    "failed": "FAILED",
    "failed_before": "failed before",
    "left": "other process",
    "lost": "LOST",
    "pending": "not run",
}


@dataclass
class CellRow:
    method: str
    suite: str
    seed: int
    status: str
    seconds: float | None = None
    average: float | None = None
    detail: str = ""  # failed: reason and failure file; left: holder; lost: why


def summary_lines(rows: Sequence[CellRow]) -> list[str]:
    """``grid finished: ...`` and the lines naming the cells that need attention."""
    count = {status: sum(row.status == status for row in rows) for status in STATUS_TEXT}
    line = f"grid finished: {count['done']} run, {count['skipped']} already recorded"
    if count["failed"]:
        line += f", {count['failed']} failed"
    if count["failed_before"]:
        line += f", {count['failed_before']} failed before (not rerun; --retry-failed reruns them)"
    if count["lost"]:
        line += f", {count['lost']} lost with their worker (rerun this grid to run them)"
    if count["pending"]:
        line += f", {count['pending']} not run (interrupted)"
    lines = []
    for status in ("failed", "failed_before", "lost"):
        lines += [f"  {label(row)}: {row.detail}" for row in rows if row.status == status]
    left = [f"  {label(row)}: {row.detail}" for row in rows if row.status == "left"]
    if left:
        line += f", {len(left)} left to other processes (rerun this grid once they finish):"
    return [line, *left, *lines]


def label(row: CellRow) -> str:
    return f"{row.method} on {row.suite} (seed {row.seed})"


def print_summary(rows: Sequence[CellRow]) -> None:
    """The per-cell table (method, suite, seed, status, seconds, average), then the counts."""
    table: list[tuple[Any, ...]] = [
        (
            row.method,
            row.suite,
            row.seed,
            STATUS_TEXT[row.status],
            f"{row.seconds:.1f}" if row.seconds is not None else "-",
            f"{row.average:.2f}" if row.average is not None else "-",
        )
        for row in rows
    ]
    click.echo("")
    print_table(["method", "suite", "seed", "status", "seconds", "average"], table)
    click.echo("\n" + "\n".join(summary_lines(rows)))
