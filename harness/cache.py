"""One cache directory for everything the harness builds or converts, keyed by content.

``HARNESS_CACHE`` moves it (default ``~/.cache/harness``). Entries are written to a
temporary name and renamed into place, so a run killed midway never leaves a half-written
entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place only on success.

    Works for files and for directories (create the directory at the yielded path).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent)) / final.name
    try:
        yield temporary
        if final.is_dir() and temporary.is_dir():
            shutil.rmtree(final)
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary.parent, ignore_errors=True)


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def cached_directory(key: str, build: Callable[[Path], None], *, namespace: str) -> Path:
    """Return ``cache/namespace/key``, calling ``build(tmp_dir)`` first if it is absent.

    A directory is complete once it exists: it only appears by an atomic rename after
    ``build`` returned.
    """
    final = cache_dir() / namespace / key
    if final.is_dir():
        return final
    with atomic_path(final) as temporary:
        temporary.mkdir()
        build(temporary)
    return final
