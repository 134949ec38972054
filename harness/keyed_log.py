"""An append-only JSON-lines file of keyed entries: a cache that survives being killed.

Each finished item (a generation, a judgment) is one line written with a single
``write`` on an ``O_APPEND`` descriptor the moment it is done, so Ctrl-C, SIGTERM or
SIGKILL lose at most the item in flight, and a rerun reads back everything before it.
A torn last line (the process died inside the write) is skipped on reading and sealed
with a newline before the next append, so it never corrupts the line after it. Later
lines win over earlier ones with the same key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class KeyedLog:
    """``key → entry`` read from, and appended to, one JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        self.torn = 0  # lines that did not parse (a write cut short by a kill)
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key = entry["key"]
            except (ValueError, KeyError, TypeError):
                self.torn += 1
                continue
            self.entries[str(key)] = entry
        if data and not data.endswith(b"\n"):
            self._write(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def append(self, key: str, entry: dict[str, Any]) -> None:
        """Add ``entry`` under ``key`` and put it on disk now (one line, one write)."""
        record = {"key": key, **entry}  # one write per line: safe from several threads
        self._write((json.dumps(record, ensure_ascii=False, default=str) + "\n").encode())
        self.entries[key] = record

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
        finally:
            os.close(descriptor)
