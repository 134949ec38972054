"""Progress bars for long work; ``--quiet`` (or a non-terminal CI log) turns them off."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_ENABLED = True


def set_enabled(enabled: bool) -> None:
    global _ENABLED
    _ENABLED = enabled


def progress_bar(
    items: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True
) -> Iterator[T]:
    """tqdm over ``items`` when progress is on, written to stderr, left off the record."""
    if not (enabled and _ENABLED):
        return iter(items)
    return iter(tqdm(items, total=total, desc=desc, leave=False, dynamic_ncols=True))
