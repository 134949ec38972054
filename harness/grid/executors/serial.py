"""Cells one after another in this process: the default, and what the others are
measured against."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from harness.grid.executors.base import Executor


class SerialExecutor(Executor):
    name = "serial"
    remote = False  # each cell builds what it needs itself; nothing races

    def map(
        self,
        fn: Callable[[Any, str], Any],
        items: Sequence[Any],
        tick: Callable[[], None] = lambda: None,
    ) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            yield index, fn(item, "")
            tick()
