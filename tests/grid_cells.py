"""What the scale-out tests run in their workers: the tiny suite and two misbehaving
methods, defined here and registered by tests/grid_plugin.py (imported by workers through
HARNESS_PLUGINS) or, in the test process, for one test only.

Both methods find their switch files in the cache directory, which the driver forwards
to every worker (HARNESS_CACHE).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harness.cache import cache_dir
from harness.method import MethodContext, Solution
from harness.registry import Entry
from tests.tiny_suite import TinySuite

REFERENCE = "https://example.org/test-only"


class TinyGridSuite(TinySuite):
    name = "tinygrid"


def fail_flag() -> Path:
    """While this file exists, ``fails_while_flagged`` raises."""
    return cache_dir() / "grid-test-fail-flag"


def crash_marker() -> Path:
    """Written by ``crash_once`` just before it kills its own process the first time."""
    return cache_dir() / "grid-test-crashed-once"


def _pretrained(context: MethodContext) -> Solution:
    return Solution(state=context.pool.output_state({}))


def fails_while_flagged(context: MethodContext) -> Solution:
    if fail_flag().exists():
        raise RuntimeError("deliberate failure of a test cell\nsecond line of the message")
    return _pretrained(context)


def crash_once(context: MethodContext) -> Solution:
    """Dies with SIGKILL on its first attempt (a lost node, an OOM kill), then works."""
    marker = crash_marker()
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return _pretrained(context)


def gpu_report(context: MethodContext) -> Solution:
    """The base model, with the GPUs the engine gave this cell in the record's method_info."""
    solution = _pretrained(context)
    solution.info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return solution


SUITE_ENTRY = Entry(
    name="tinygrid", kind="suite", obj=TinyGridSuite, family="suite", module=__name__
)
METHOD_ENTRIES = [
    Entry(name=fn.__name__, kind="method", obj=fn, family="baseline", reference=REFERENCE,
          module=__name__)
    for fn in (fails_while_flagged, crash_once, gpu_report)
]  # fmt: skip
