"""Safe file names for pages whose names come from records (method, suite, run names).

A record's method name is free text: it may hold ``/``, ``..`` or HTML. Pages are named
by a slug that keeps only ``[A-Za-z0-9._-]`` and, when anything had to change, a short
hash of the original so two different names never share a file.
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,79}$")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """A file-name-safe, collision-free stand-in for ``name``."""
    if _SAFE.match(name) and ".." not in name:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    cleaned = _UNSAFE_RUN.sub("-", name).replace("..", "-").strip(".-_")[:60]
    return f"{cleaned}-{digest}" if cleaned else f"x-{digest}"


class UniqueNames:
    """Hands out distinct slugs, adding ``-2``, ``-3`` ... when two names collide."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def take(self, name: str) -> str:
        base = slug(name)
        candidate, counter = base, 2
        while candidate.lower() in self._used:  # case-insensitive file systems
            candidate, counter = f"{base}-{counter}", counter + 1
        self._used.add(candidate.lower())
        return candidate
