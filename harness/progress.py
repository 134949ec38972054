"""Progress output for long work: bars on a terminal only, and one-line stage notes.

Bars are drawn only when stderr is a terminal (or a notebook): a redirected log or a CI
job gets no carriage-return redraws. ``--quiet`` turns them off everywhere. The bars that
libraries draw themselves (huggingface_hub downloads, ``datasets`` and ``transformers``
loading) follow the same switch. :func:`note` prints short lines that belong in a log
(what is being built, which stage finished) whether bars are on or not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import TypeVar

import click
from tqdm.auto import tqdm

T = TypeVar("T")

_ENABLED = True

# Libraries that draw their own tqdm bars: the variable each reads when it is imported,
# and the function that turns its bars off once it has been.
_LIBRARY_SWITCHES = (
    ("huggingface_hub", "HF_HUB_DISABLE_PROGRESS_BARS", "huggingface_hub.utils",
     "disable_progress_bars"),
    ("datasets", "HF_DATASETS_DISABLE_PROGRESS_BARS", "datasets.utils.logging",
     "disable_progress_bar"),
    ("transformers", None, "transformers.utils.logging", "disable_progress_bar"),
)  # fmt: skip
_SET_BY_US: set[str] = set()


def on_terminal() -> bool:
    """Whether stderr is shown live to a person: a terminal, or a Jupyter kernel."""
    stream = sys.stderr
    try:
        interactive = bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        interactive = False
    return interactive or "ipykernel" in sys.modules


def bars_enabled() -> bool:
    """Bars are drawn when not turned off (``--quiet``) and stderr is live."""
    return _ENABLED and on_terminal()


def set_enabled(enabled: bool) -> None:
    """Turn the harness's bars, and the libraries' own, on or off (``--quiet``).

    Off also when stderr is not a terminal. Library bars are silenced through their
    environment switches (read when they are imported) or, if already imported, their
    functions; a switch the user set themselves is left alone.
    """
    global _ENABLED
    _ENABLED = enabled
    _set_library_bars(bars_enabled())


def _set_library_bars(enabled: bool) -> None:
    import importlib

    for package, variable, module_name, function in _LIBRARY_SWITCHES:
        if variable is not None:
            if not enabled and variable not in os.environ:
                os.environ[variable] = "1"
                _SET_BY_US.add(variable)
            elif enabled and variable in _SET_BY_US:
                os.environ.pop(variable, None)
                _SET_BY_US.discard(variable)
        if not enabled and package in sys.modules:
            # an older or newer layout: the environment switch still covers it
            with suppress(ImportError, AttributeError):
                getattr(importlib.import_module(module_name), function)()


def progress_bar(
    items: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True
) -> Iterator[T]:
    """tqdm over ``items`` when bars are on (see :func:`bars_enabled`), on stderr."""
    if not (enabled and bars_enabled()):
        return iter(items)
    return iter(tqdm(items, total=total, desc=desc, leave=False, dynamic_ncols=True))


def note(message: str) -> None:
    """One line on stderr for the log: shown with or without bars (e.g. a finished stage)."""
    click.echo(message, err=True)


class Counter:
    """A bar for work that finishes out of order (a grid's cells across workers).

    Drawn only when bars are on; otherwise every call is a no-op, and the caller prints
    its own log lines.
    """

    def __init__(self, total: int, desc: str = "", *, enabled: bool = True) -> None:
        self._bar = (
            tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
            if enabled and bars_enabled()
            else None
        )

    def advance(self, count: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def status(self, text: str) -> None:
        """Text shown after the bar (counts, ETA)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
