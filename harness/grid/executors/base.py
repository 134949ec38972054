"""What every executor does: run ``fn(item, job)`` for many items, report as each ends.

An executor only places work; what a cell does lives in :mod:`harness.grid.cell`. The
driver calls :meth:`Executor.map` and reads ``(index, result)`` pairs as cells finish;
a result is the function's return value, or :class:`Lost` when the engine lost the job
(a killed worker, a dead node, a cancelled or pre-empted job that was not requeued).
While waiting, the executor calls ``tick`` about once a second so progress stays live.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from harness.errors import HarnessError

POLL_S = 1.0


@dataclass(frozen=True)
class Lost:
    """A job the engine lost: its cell has no outcome, and a rerun of the grid runs it."""

    reason: str
    job: str = ""  # the engine's job id, whose lock the driver may then release


@dataclass(frozen=True)
class Resources:
    """What each cell asks the engine for (None: the engine's default)."""

    gpus: float | None = None
    cpus: int | None = None
    mem_gb: float | None = None


NO_REQUESTS = Resources()


class Executor(ABC):
    """Runs functions on an engine; ``remote`` executors need suites prepared first."""

    name = ""
    remote = True
    # True when the cells run on this very machine anyway (submitit's local and debug
    # executors): the suites are then prepared in the driver, saving a process start
    prepares_in_driver = False
    # index → job id of items force-killed when the map was closed early: their cells
    # could not release their locks, so the driver does
    killed: dict[int, str]

    def __init__(self) -> None:
        self.killed = {}

    def start(self) -> None:  # noqa: B027 (an engine without set-up needs none)
        """Connect to (or start) the engine; errors are one-line HarnessErrors."""

    def close(self) -> None:  # noqa: B027
        """Let go of the engine (only what :meth:`start` started)."""

    @abstractmethod
    def map(
        self,
        fn: Callable[[Any, str], Any],
        items: Sequence[Any],
        tick: Callable[[], None] = lambda: None,
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item, job)`` for every item; yield ``(index, result | Lost)`` as each ends.

        Closing the iterator early (Ctrl-C in the driver) cancels what is still in flight.
        """

    def describe(self) -> str:
        return self.name


def import_engine(module: str, extra: str) -> ModuleType:
    """The engine's module, or a one-line error naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise HarnessError(
            f"--executor {extra} needs {module}, which is not installed; "
            f"pip install 'merging-harness[{extra}]'"
        ) from None
