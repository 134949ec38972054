"""Grouping runs into leaderboard cells and aggregating seeds to mean ± std (n).

A *cell* is one protocol: the same suite, checkpoint set, tasks and suite options, the
same method, and the same way of choosing its hyperparameters (selection strategy plus
the values fixed with ``--set``). Runs that differ only by seed fall into one cell. Values
chosen on the validation split are an outcome, not part of the protocol, so grid-selected
runs of different seeds stay in one cell even when they picked different values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

# Per-run numbers that are aggregated over the seeds of a cell.
MEASURES = (
    "average",
    "normalized_average",
    "load_s",
    "select_s",
    "method_s",
    "merge_s",
    "evaluate_s",
    "total_s",
    "peak_memory_bytes",
    "method_memory_bytes",
    "extra_parameters",
)

MIB = 2**20


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (None for one run) and number of runs with a value."""

    mean: float | None
    std: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


@dataclass
class Run:
    """One record, where it was read from, and the site page that shows it."""

    record: dict[str, Any]
    path: Path
    page: str = ""  # file name under runs/, set by the builder


@dataclass
class Cell:
    suite: str
    checkpoint_set: str
    method: str
    family: str
    reference: str
    setting: str  # how hyperparameters were chosen, in words
    key: str  # stable identity of the protocol (JSON)
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, Stat] = field(default_factory=dict)  # MEASURES and "task:<name>"
    tasks: list[str] = field(default_factory=list)
    memory_kind: str = "CPU"

    @property
    def chosen(self) -> str:
        """The values used, with how they were chosen (see :func:`chosen_values`)."""
        return chosen_values([run.record for run in self.runs])

    def stat(self, name: str) -> Stat:
        return self.stats.get(name, Stat(None, None, 0))


def _fixed_values(record: dict[str, Any]) -> dict[str, Any]:
    fixed = record["selection"].get("fixed", [])
    return {name: record["hyperparameters"].get(name) for name in sorted(fixed)}


def _assignments(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def setting_label(record: dict[str, Any]) -> str:
    """How this run's hyperparameters were chosen, in a few words."""
    strategy = record["selection"]["strategy"]
    fixed = _fixed_values(record)
    if strategy == "defaults":
        label = "paper defaults"
    elif strategy == "fixed" or (fixed and len(fixed) == len(record["hyperparameters"])):
        label = f"fixed {_assignments(fixed)}" if fixed else "fixed"
    else:
        label = "selected on validation"
        if fixed:
            label += f" ({_assignments(fixed)} fixed)"
    if not record["hyperparameters"] and strategy != "defaults":
        label = "no hyperparameters"
    options = record["suite"].get("options") or {}
    if options:
        label += f"; suite {_assignments(dict(sorted(options.items())))}"
    return label


_HOW_CHOSEN = {"grid": "validation", "defaults": "paper defaults", "fixed": "fixed"}


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def chosen_values(records: list[dict[str, Any]]) -> str:
    """The hyperparameter values the runs of one cell used, and how they were chosen:
    ``scaling=0.3, density=0.2 (validation)``; seeds that chose differently show every
    value (``scaling=0.1/0.3``), so a grid-selected cell never hides what it picked."""
    if not records:
        return ""
    first = records[0]
    names = list(first["hyperparameters"])
    for record in records[1:]:
        names.extend(n for n in record["hyperparameters"] if n not in names)
    parts = []
    for name in names:
        values: list[str] = []
        for record in records:
            text = _value_text(record["hyperparameters"].get(name))
            if text not in values:
                values.append(text)
        parts.append(f"{name}={'/'.join(values)}")
    strategy = first["selection"]["strategy"]
    how = _HOW_CHOSEN.get(strategy, strategy)
    fixed = sorted(first["selection"].get("fixed") or [])
    if fixed and strategy != "fixed":
        how += f"; {', '.join(fixed)} fixed"
    text = f"{', '.join(parts)} ({how})" if parts else "no hyperparameters"
    options = first["suite"].get("options") or {}
    if options:
        text += f"; suite {_assignments(dict(sorted(options.items())))}"
    return text


def cell_key(record: dict[str, Any]) -> str:
    suite = record["suite"]
    return json.dumps(
        [
            suite["name"],
            suite["checkpoint_set"],
            sorted(suite["tasks"]),
            suite.get("options") or {},
            record["method"]["name"],
            record["selection"]["strategy"],
            _fixed_values(record),
        ],
        sort_keys=True,
        default=str,
    )


def run_measures(record: dict[str, Any]) -> dict[str, Any]:
    """The per-run numbers of one record, flat (tasks as ``task:<name>``)."""
    timings = record["timings"]
    memory = record["peak_memory"]
    gpu = memory.get("cuda_bytes")
    row: dict[str, Any] = {
        "average": record["average"],
        "normalized_average": record["normalized_average"],
        "load_s": timings.get("load_s"),
        "select_s": timings.get("select_s"),
        "method_s": timings.get("method_s"),
        # what merging costs: the method step plus building per-task models (lazy
        # methods such as TALL masks do their work there; older records lack it)
        "merge_s": (
            timings["method_s"] + timings.get("per_task_s", 0.0)
            if timings.get("method_s") is not None
            else None
        ),
        "evaluate_s": timings.get("evaluate_s"),
        "total_s": timings.get("total_s"),
        "peak_memory_bytes": gpu if gpu else memory.get("cpu_rss_bytes"),
        # the method step's own peak above what was resident (optional, newer records)
        "method_memory_bytes": (
            memory["method_mib"] * MIB if memory.get("method_mib") is not None else None
        ),
        "extra_parameters": record["extra_parameters"],
    }
    for task, entry in record["tasks"].items():
        row[f"task:{task}"] = entry["metric"]
    return row


def _stat(mean: Any, std: Any, n: Any) -> Stat:
    n = int(n)
    if n == 0:
        return Stat(None, None, 0)
    return Stat(float(mean), float(std) if n > 1 and pd.notna(std) else None, n)


def group_runs(runs: list[Run]) -> list[Cell]:
    """Runs grouped into cells with every measure aggregated; ordered by suite, then key."""
    cells: dict[str, Cell] = {}
    rows = []
    for run in sorted(runs, key=lambda r: (r.record["seed"], str(r.path))):
        record = run.record
        key = cell_key(record)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell(
                suite=record["suite"]["name"],
                checkpoint_set=record["suite"]["checkpoint_set"],
                method=record["method"]["name"],
                family=record["method"]["family"],
                reference=record["method"]["reference"],
                setting=setting_label(record),
                key=key,
                tasks=list(record["suite"]["tasks"]),
            )
        cell.runs.append(run)
        if record["peak_memory"].get("cuda_bytes"):
            cell.memory_kind = "GPU"
        rows.append({"cell": key, **run_measures(record)})
    if not rows:
        return []
    frame = pd.DataFrame(rows).set_index("cell").apply(pd.to_numeric, errors="coerce")
    summary = frame.groupby(level="cell").agg(["mean", "std", "count"])
    for key, cell in cells.items():
        line = summary.loc[key]
        for column in frame.columns:
            cell.stats[column] = _stat(
                line[(column, "mean")], line[(column, "std")], line[(column, "count")]
            )
    return sorted(cells.values(), key=lambda c: (c.suite, c.checkpoint_set, c.method, c.key))
