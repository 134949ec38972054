"""Build each suite's shared artifacts once, before its cells fan out.

A suite's build (mini8's experts, a mirror's conversions, the token caches) and the
experts' own test scores (the normalised-accuracy denominators) are cached on first use.
Left to the cells, every worker that starts at once would find them missing: the
resumable builds would wait on one another's lock and the rest would each do the work.
So the driver runs one prepare job per distinct suite configuration first, on the
engine (a login node need not build anything), and the cells then only read the cache.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from harness.grid.cell import DONE, FAILED, CellResult


def suite_key(spec: Any) -> tuple:
    """Cells with equal keys share one suite build and one set of expert scores."""
    return (
        spec.suite,
        tuple(sorted(spec.suite_options.items())),
        tuple(spec.only or ()),
        str(spec.mirror or ""),
        spec.device,
    )


def prepare_suite(spec: Any, job: str = "") -> CellResult:
    """Load the cell's suite (building it if needed) and score its experts; never raises."""
    import traceback

    from harness.grid.failures import one_line_reason
    from harness.method import MethodContext
    from harness.run.provenance import resolve_device
    from harness.run.runner import individual_reference, load_suite, seed_everything

    started = time.perf_counter()
    try:
        device = resolve_device(spec.device)
        seed_everything(spec.seed)
        suite = load_suite(dataclasses.replace(spec, progress=False), device)
        if spec.method != "individual":  # the individual method measures its own
            context = MethodContext(suite, suite.pool(), device, seed=spec.seed, progress=False)
            individual_reference(context)
    except Exception as error:
        return CellResult(
            FAILED,
            time.perf_counter() - started,
            reason=f"preparing {spec.suite} failed: {one_line_reason(error)}",
            notes=[traceback.format_exc()],
        )
    return CellResult(DONE, time.perf_counter() - started)
