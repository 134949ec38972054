"""Live progress of a grid across workers: done / running / failed, and an ETA.

Running cells are seen from the driver without asking the engine: a cell is running
while its lock file exists (the worker holds it from start to record). Every finished
cell prints one log line carrying the counts, and a bar is drawn on a terminal.
"""

from __future__ import annotations

import time

from harness.progress import Counter


def duration(seconds: float) -> str:
    """``41s``, ``3m 05s``, ``2h 04m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class GridProgress:
    """Counts of the cells handed to the executor, and when the rest should be done."""

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self.total = total
        self.finished = 0
        self.failed = 0
        self.running = 0
        self.started = time.monotonic()
        self.bar = Counter(total, "grid", enabled=enabled)

    def eta_s(self) -> float | None:
        """Seconds left at the rate cells have finished so far (None before the first)."""
        if not self.finished or self.finished >= self.total:
            return None
        rate = self.finished / max(time.monotonic() - self.started, 1e-9)
        return (self.total - self.finished) / rate

    def text(self) -> str:
        parts = [f"{self.finished}/{self.total} finished", f"{self.running} running"]
        parts.append(f"{self.failed} failed")
        eta = self.eta_s()
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        return ", ".join(parts)

    def set_running(self, running: int) -> None:
        if running != self.running:
            self.running = running
            self.bar.status(self.text())

    def finish_one(self, *, failed: bool) -> None:
        self.finished += 1
        self.failed += int(failed)
        self.bar.advance()
        self.bar.status(self.text())

    def close(self) -> None:
        self.bar.close()
