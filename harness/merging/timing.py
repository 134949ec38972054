"""Where a merge spends its time: read, statistics, merge, output.

A data-free merge is a few passes over the pool; which pass dominates decides what to
make faster. The pool reports its reads, the whole-model statistics (top-k thresholds,
sums) and the per-tensor merges report their compute, and placing results into the
output state reports as output. Sections nest (a statistics pass reads tensors): each
second is counted once, in the innermost section, so the passes add up to at most the
wall time. Costs two ``perf_counter`` calls per section, so it is always on; the bench
resets it before a merge and reads it after.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

PASSES = ("read", "statistics", "merge", "output")

_totals: dict[str, float] = dict.fromkeys(PASSES, 0.0)
_stack: list[list[float]] = []  # per open section: [start, seconds spent in children]


def reset() -> None:
    """Zero every pass (before the merge being measured)."""
    for name in PASSES:
        _totals[name] = 0.0


def totals() -> dict[str, float]:
    """Seconds per pass since the last ``reset``."""
    return dict(_totals)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Count the time inside the block, less its nested sections, as pass ``name``."""
    frame = [time.perf_counter(), 0.0]
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        spent = time.perf_counter() - frame[0]
        _totals[name] = _totals.get(name, 0.0) + spent - frame[1]
        if _stack:
            _stack[-1][1] += spent
