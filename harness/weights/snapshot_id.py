"""Identities of local snapshots (mirror directories, converted files) for keys and records.

A hub download names its commit; a mirror copied without ``hf download`` metadata does
not. Then a cheap fingerprint (relative path, size, mtime of every file) keys caches, and
a content hash, computed once per fingerprint and cached, goes into the record.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.cache import cache_dir, content_key, write_json_atomic


def snapshot_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(
        file
        for file in path.rglob("*")
        if file.is_file() and ".cache" not in file.relative_to(path).parts
    )


def snapshot_fingerprint(path: Path) -> str:
    """Changes whenever a file is added, removed, resized or rewritten."""
    parts = []
    for file in snapshot_files(path):
        stat = file.stat()
        parts.append(
            (
                str(file.relative_to(path)) if file != Path(path) else file.name,
                stat.st_size,
                stat.st_mtime_ns,
            )
        )
    return content_key("snapshot", parts)


def snapshot_sha256(path: Path) -> str:
    """sha256 over every file's relative name and bytes; cached by fingerprint."""
    import json

    fingerprint = snapshot_fingerprint(path)
    memo = cache_dir() / "snapshot-sha256" / f"{fingerprint}.json"
    if memo.is_file():
        try:
            return json.loads(memo.read_text())["sha256"]
        except (ValueError, KeyError):
            pass
    digest = hashlib.sha256()
    for file in snapshot_files(path):
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()
    write_json_atomic(memo, {"sha256": value, "path": str(path)})
    return value
