"""One cache directory for everything the harness builds or converts, keyed by content.

``HARNESS_CACHE`` moves it (default ``~/.cache/harness``). Entries are written to a
temporary name and renamed into place, so a run killed midway never leaves a half-written
entry that a later run would trust.

Temporary folders record their owner (host, process id and its start time). One whose
owner is gone, or that nobody has touched for :data:`STALE_AFTER_S`, is removed by the
next run that writes beside it; one a live process is writing is never touched. A
resumable build (:func:`cached_directory` with ``resumable=True``) keeps its finished
stages in ``.<key>.partial`` across interruptions, under a lock, so the next run
continues from the last finished stage instead of starting over.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

# A temporary folder nobody has written to for this long is abandoned, whoever owns it
# (an owner on another host, or one from a harness version that did not record owners).
STALE_AFTER_S = 24 * 3600
# A partial resumable build (finished stages) is kept this long for a resume.
PARTIAL_KEPT_S = 7 * 24 * 3600

_OWNER_FILE = ".owner.json"
_PARTIAL_SUFFIX = ".partial"
_LOCK_SUFFIX = ".lock"


def cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness"
    return Path(root).expanduser()


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (configs, seeds, upstream hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- owners
def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}


def _alive(owner: dict[str, Any]) -> bool | None:
    """Whether the owner process still runs; ``None`` when this host cannot tell."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return None
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    start = _process_start(owner["pid"])
    return start is None or owner.get("start") in (None, start)


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def _idle_for(path: Path) -> float:
    try:
        return time.time() - _newest_mtime(path)
    except OSError:
        return 0.0


def _temporary_is_stale(folder: Path, max_age: float) -> bool:
    try:
        owner = json.loads((folder / _OWNER_FILE).read_text())
    except (OSError, ValueError):
        owner = {}
    alive = _alive(owner) if isinstance(owner, dict) else None
    if alive is not None:
        return not alive
    return _idle_for(folder) > max_age


def _lock_is_free(lock: Path) -> bool:
    try:
        handle = open(lock, "a")  # noqa: SIM115 (closed just below)
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def remove_stale_temporaries(
    directory: Path,
    name: str | None = None,
    *,
    max_age: float = STALE_AFTER_S,
    partial_max_age: float = PARTIAL_KEPT_S,
) -> list[Path]:
    """Remove abandoned temporary folders in ``directory`` (only those for ``name``).

    A temporary folder (``.<name>.<random>``) goes when its owner process is gone, or,
    when the owner cannot be checked from here, after ``max_age`` seconds untouched. A
    partial resumable build (``.<name>.partial``) goes only when no build holds its lock
    and it has been untouched for ``partial_max_age``. Returns what was removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    prefix = f".{name}." if name is not None else "."
    removed = []
    for entry in directory.iterdir():
        if not entry.name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        if entry.name.endswith(_PARTIAL_SUFFIX):
            lock = entry.with_name(entry.name[: -len(_PARTIAL_SUFFIX)] + _LOCK_SUFFIX)
            stale = _idle_for(entry) > partial_max_age and _lock_is_free(lock)
            if stale:
                lock.unlink(missing_ok=True)
        else:
            stale = _temporary_is_stale(entry, max_age)
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


# ---------------------------------------------------------------------- atomic writes
@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place only on success.

    Works for files and for directories (create the directory at the yielded path).
    Abandoned temporaries of ``final`` from killed runs are cleared first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, final.name, partial_max_age=float("inf"))
    folder = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    temporary = folder / final.name
    try:
        (folder / _OWNER_FILE).write_text(json.dumps(_owner()))
        yield temporary
        if final.is_dir() and temporary.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


# ---------------------------------------------------------------------- cached builds
@contextmanager
def _exclusive(lock: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (waiting for another holder)."""
    while True:
        handle = open(lock, "a+")  # noqa: SIM115 (held open while the lock is held)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file a finished build already removed
                break
        except BaseException:
            handle.close()
            raise
        handle.close()
    try:
        yield
    finally:
        handle.close()


def cached_directory(
    key: str,
    build: Callable[[Path], None],
    *,
    namespace: str,
    resumable: bool = False,
    on_wait: Callable[[], None] | None = None,
) -> Path:
    """Return ``cache/namespace/key``, calling ``build(work_dir)`` first if it is absent.

    A directory is complete once it exists: it only appears by an atomic rename after
    ``build`` returned. Abandoned temporaries in the namespace are cleared first.

    With ``resumable=True`` the work directory is ``.<key>.partial`` and survives an
    interruption; ``build`` must write each file atomically (:func:`atomic_path`), so
    every file found there on the next call is a finished stage it may reuse. Either way a
    lock keeps two processes from building the same key at once: the second waits (after
    calling ``on_wait``) and then returns the first one's result.
    """
    namespace_dir = cache_dir() / namespace
    final = namespace_dir / key
    if final.is_dir():
        return final
    namespace_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(namespace_dir)
    lock = namespace_dir / f".{key}{_LOCK_SUFFIX}"
    with _exclusive(lock, on_wait):
        try:
            # another process may have finished it while this one waited: never rebuild
            # a directory in place, since someone may be reading it
            if not final.is_dir():
                if resumable:
                    partial = namespace_dir / f".{key}{_PARTIAL_SUFFIX}"
                    partial.mkdir(exist_ok=True)
                    build(partial)
                    os.replace(partial, final)
                else:
                    with atomic_path(final) as temporary:
                        temporary.mkdir()
                        build(temporary)
        finally:  # a waiter holding the old lock file re-checks it (see _exclusive)
            lock.unlink(missing_ok=True)
    return final
