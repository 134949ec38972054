"""Run records: one schema-versioned JSON file per run, written atomically.

Layout: ``<results>/<suite>/<method>/<run_id>.json``. A record is validated against
``record_schema.json`` before it is written and when it is read; a corrupt or invalid
file is reported with its path and the field at fault, and skipped, never overwritten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.cache import write_json_atomic
from harness.errors import RecordError, ResultsDirError

SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("harness.run").joinpath("record_schema.json").read_text())


def validation_errors(record: Any) -> list[str]:
    """Every schema violation, each as ``field.path: message`` (empty when valid)."""
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    if isinstance(record, dict) and not problems:
        problems.extend(_consistency_errors(record))
    return problems


def _consistency_errors(record: dict[str, Any]) -> list[str]:
    problems = []
    if set(record["tasks"]) != set(record["suite"]["tasks"]):
        problems.append("tasks: the scored tasks differ from suite.tasks")
    metrics = [entry["metric"] for entry in record["tasks"].values()]
    if metrics and abs(sum(metrics) / len(metrics) - record["average"]) > 1e-6:
        problems.append("average: is not the mean of the per-task metrics")
    return problems


def record_path(results_dir: Path, record: dict[str, Any]) -> Path:
    return (
        Path(results_dir)
        / record["suite"]["name"]
        / record["method"]["name"]
        / f"{record['run_id']}.json"
    )


def ensure_writable(results_dir: Path) -> Path:
    """Create ``results_dir`` if needed and prove it is writable, before any work is done."""
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = results_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ResultsDirError(
            f"results directory {results_dir} is not writable ({error.strerror}); "
            "pass --results with a directory you can write to"
        ) from None
    return results_dir


def write_record(results_dir: Path, record: dict[str, Any]) -> Path:
    """Validate and write one record atomically; an existing file is never overwritten."""
    problems = validation_errors(record)
    if problems:
        raise RecordError(f"refusing to write an invalid record: {problems[0]}")
    path = record_path(results_dir, record)
    if path.exists():
        raise RecordError(f"{path} exists already; remove it or use another --results")
    try:
        write_json_atomic(path, record)
    except OSError as error:
        raise ResultsDirError(f"cannot write {path} ({error.strerror})") from None
    return path


def read_record(path: Path) -> dict[str, Any]:
    """One record, or a RecordError naming the file and the field at fault."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: cannot read ({error})") from None
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    problems = validation_errors(data)
    if problems:
        raise RecordError(f"{path}: {problems[0]}")
    return data


@dataclass
class LoadedRecords:
    records: list[dict[str, Any]]
    paths: list[Path]
    problems: list[str]  # one line per file skipped


def record_files(results_dir: Path) -> Iterator[Path]:
    results_dir = Path(results_dir)
    if results_dir.is_dir():
        yield from sorted(p for p in results_dir.rglob("*.json") if not p.name.startswith("."))


def load_records(results_dir: Path) -> LoadedRecords:
    """Every valid record under ``results_dir``; invalid files are listed, not fatal."""
    loaded = LoadedRecords([], [], [])
    for path in record_files(results_dir):
        try:
            loaded.records.append(read_record(path))
            loaded.paths.append(path)
        except RecordError as error:
            loaded.problems.append(str(error))
    return loaded


def validation_problems_in(files: list[Path]) -> list[str]:
    """One ``path: field: message`` line per problem, over the given record files."""
    problems = []
    for path in files:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{path}: cannot read ({error})")
            continue
        except json.JSONDecodeError as error:
            problems.append(f"{path}: not valid JSON (line {error.lineno}: {error.msg})")
            continue
        record_problems = validation_errors(data)
        problems.extend(f"{path}: {problem}" for problem in record_problems)
        if not record_problems:
            problems.extend(f"{path}: {problem}" for problem in _placement_errors(path, data))
    return problems


def _placement_errors(path: Path, record: dict[str, Any]) -> list[str]:
    """A record must sit at ``<results>/<suite>/<method>/<run_id>.json``, where the harness
    (and ``harness grid``'s resume check) looks for it."""
    expected = record_path(Path(), record).as_posix()
    if Path(path).as_posix() == expected or Path(path).as_posix().endswith("/" + expected):
        return []
    return [f"run_id, suite.name, method.name: the file belongs at <results>/{expected}; move it"]
