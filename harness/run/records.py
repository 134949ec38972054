"""Run records: one schema-versioned JSON file per run, written atomically.

Layout: ``<results>/<suite>/<method>/<run_id>.json``. A record is validated against
``record_schema.json`` before it is written and when it is read; a corrupt or invalid
file is reported with its path and the field at fault, and skipped, never overwritten.
A run about to replace a corrupt record first moves it aside
(``<run_id>.json.corrupt-<timestamp>``), so nothing a user might still want is lost.

While a run is in progress its cell is locked: ``<run_id>.json.lock`` beside the record,
created with O_CREAT|O_EXCL and holding the owner's pid, host and start time, so two
processes sharing one results directory (two ``harness grid``) never run a cell twice.
A lock whose pid is dead on this host is stale and taken over. A cell run by an engine
(Ray, Slurm) also records its job id: a retried or requeued attempt of the same job takes
its own earlier lock over on any host, and a grid driver told that a job was lost removes
that job's lock (:func:`release_lost_lock`), so a dead node never blocks a cell for good.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.cache import write_json_atomic
from harness.errors import CellLockedError, RecordError, ResultsDirError

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


def write_record(results_dir: Path, record: dict[str, Any], *, replace: bool = False) -> Path:
    """Validate and write one record atomically.

    An existing file is never overwritten unless ``replace`` (``--overwrite``); even then
    the old record stays whole until the new one is renamed over it.
    """
    problems = validation_errors(record)
    if problems:
        raise RecordError(f"refusing to write an invalid record: {problems[0]}")
    path = record_path(results_dir, record)
    if path.exists() and not replace:
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


def set_aside(path: Path, label: str = "corrupt") -> Path:
    """Rename ``path`` to ``<name>.<label>-<UTC timestamp>`` (never replacing a file there).

    The new name does not end in ``.json``, so readers of the results no longer see it.
    """
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        suffix = f"-{attempt}" if attempt else ""
        aside = path.with_name(f"{path.name}.{label}-{stamp}{suffix}")
        try:
            os.link(path, aside)  # fails if ``aside`` exists: nothing is overwritten
        except FileExistsError:
            continue
        os.unlink(path)
        return aside
    raise RecordError(f"cannot find a free name to move {path} aside; clean up its folder")


def existing_record(path: Path) -> dict[str, Any] | None:
    """The valid record at ``path``, or None when there is none.

    Raises RecordError (naming the file and why) when the file is there but corrupt.
    """
    if not Path(path).exists():
        return None
    return read_record(path)


# ---------------------------------------------------------------------------- cell locks

STALE_UNREADABLE_S = 60.0  # an unreadable lock younger than this may be one being written


@dataclass(frozen=True)
class LockOwner:
    """Who holds a cell: written into the lock file as JSON."""

    pid: int
    host: str
    created: str
    command: str = ""
    token: str = ""
    job: str = ""  # the engine's job id ("ray:<task>", "submitit:<job>"); "" when run directly

    def alive(self) -> bool:
        """False only when the owner is certainly gone: a dead pid on this host."""
        if self.host != socket.gethostname():
            return True  # cannot tell; the user can remove the lock file
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's live process
        return True

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (since {self.created})"


def lock_path(record: Path) -> Path:
    return Path(record).with_name(Path(record).name + ".lock")


def _read_owner(path: Path) -> LockOwner | None | str:
    """The lock's owner; None if the lock is gone; "unreadable" if it cannot be parsed."""
    try:
        data = json.loads(path.read_text())
        return LockOwner(
            pid=int(data["pid"]),
            host=str(data["host"]),
            created=str(data["created"]),
            command=str(data.get("command", "")),
            token=str(data.get("token", "")),
            job=str(data.get("job", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"


def _remove_if_unchanged(path: Path, seen: LockOwner | str) -> None:
    """Remove a stale lock, unless another process replaced it since we read it.

    A guard file (O_EXCL too) makes read-compare-remove one step among processes that all
    found the same stale lock, so none of them removes a lock another just took.
    """
    guard = path.with_name(path.name + ".takeover")
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        try:  # a guard left by a process killed within these few lines
            if time.time() - guard.stat().st_mtime > STALE_UNREADABLE_S:
                guard.unlink()
        except FileNotFoundError:
            pass
        return
    try:
        if _read_owner(path) == seen:
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def _locked_error(record: Path, lock: Path, owner: LockOwner | None) -> CellLockedError:
    who = owner.describe() if owner else "a process that is starting it"
    return CellLockedError(
        f"{record.name} is being run by {who}; wait for it to finish, or, if that "
        f"process is gone, remove {lock}",
        holder=who,
    )


@contextmanager
def cell_lock(record: Path, *, command: str = "", job: str = "") -> Iterator[LockOwner]:
    """Hold the lock of the run whose record is ``record`` for the duration of the block.

    Raises CellLockedError when a live process holds it; takes over a stale one, and one
    left by an earlier attempt of the same engine ``job`` (a retried or requeued job). The
    lock is removed when the block ends, however it ends (success, error, Ctrl-C).
    """
    record = Path(record)
    path = lock_path(record)
    created = [folder for folder in (path.parent, path.parent.parent) if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = LockOwner(
        pid=os.getpid(),
        host=socket.gethostname(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
        token=os.urandom(8).hex(),
        job=job,
    )
    for _ in range(5):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read_owner(path)
            if held is None:
                continue  # released meanwhile: try again
            if held == "unreadable":
                try:
                    young = time.time() - path.stat().st_mtime < STALE_UNREADABLE_S
                except FileNotFoundError:
                    continue
                if young:  # most likely being written this very moment
                    raise _locked_error(record, path, None) from None
            elif not (job and held.job == job) and held.alive():  # type: ignore[union-attr]
                raise _locked_error(record, path, held) from None  # type: ignore[arg-type]
            _remove_if_unchanged(path, held)
            continue
        try:
            with os.fdopen(descriptor, "w") as handle:
                json.dump(asdict(owner), handle)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        break
    else:
        raise _locked_error(record, path, None)
    try:
        yield owner
    finally:
        if _read_owner(path) == owner:  # never remove a lock that is not ours
            path.unlink(missing_ok=True)
        for folder in created:  # a run that wrote nothing leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def release_lost_lock(record: Path, job: str) -> bool:
    """Remove the cell's lock if the engine job ``job`` holds it; True if it did.

    Called by a grid driver that the engine told the job is gone (a lost node, a killed
    worker, a cancelled job): its process can no longer release the lock itself.
    """
    path = lock_path(record)
    held = _read_owner(path)
    if not job or not isinstance(held, LockOwner) or held.job != job:
        return False
    _remove_if_unchanged(path, held)
    return not path.exists()


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
