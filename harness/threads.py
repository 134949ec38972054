"""CPU thread settings that stay fast when other processes share the cores.

PyTorch runs its CPU operators (and MKL's) in OpenMP parallel regions (GNU libgomp in
the pip wheels), one thread per usable core. By default a worker that reaches the end of
a region first busy-waits ("spins", up to 300,000 iterations) for its partners; libgomp
only shortens the spin when it has more threads than CPUs, and it cannot see other
processes. Alone on the machine that saves a wake-up. When other processes share the
cores, the spinning worker burns the time slice that the lagging worker needs, and each
of the thousands of small operators in a forward or backward pass waits for a
descheduled partner, so the slowdown grows far beyond the load.

Measured on the 2-core machine (mini8's tower: 8 forward passes at batch 512, 15
training steps at batch 128; two ``while True: pass`` loops competing; seconds, several
runs each, other users' load 2-3 throughout):

    =========================  ============  ============  ============  ============
    waiting                    idle eval     idle train    loaded eval   loaded train
    =========================  ============  ============  ============  ============
    spin (libgomp default)     0.41-0.78     0.43-0.70     1.37-5.48     2.05-36.9
    GOMP_SPINCOUNT=10000       0.29-0.41     0.52-0.64     0.97-1.08     1.56-3.16
    passive                    0.41-0.53     0.81-0.95     0.81-1.12     0.86-2.01
    one thread, spin           0.93          1.04          1.12          1.12
    =========================  ============  ============  ============  ============

And the real thing, one run each on an idle 2-core machine, then at load 3 (two busy
loops): the cold mini8 build (``harness eval --method ties --tasks mini8``, wall) and the
selection step of the warm run that follows (14 validation passes):

    =========================  ===============  =====================
    waiting                    cold build idle  warm selection loaded
    =========================  ===============  =====================
    spin (libgomp default)     203 s            45.8 s, 60.5 s
    GOMP_SPINCOUNT=10000       197 s            21.1 s, 28.1 s
    passive                    322 s            19.0 s, 20.0 s
    =========================  ===============  =====================

Passive waiting removes the collapse under load but makes the idle build 1.6x slower
(a sleeping worker is woken for each of thousands of small operators); a short spin of
10,000 iterations keeps the idle speed and most of the gain under load, so that is the
default here. ``OMP_WAIT_POLICY=PASSIVE`` suits a machine that is always shared,
``OMP_WAIT_POLICY=ACTIVE`` a dedicated one; setting either (or ``GOMP_SPINCOUNT``,
``KMP_BLOCKTIME``) leaves the choice to you.

:func:`configure_threads` is called once at CLI start, before torch is imported (the
OpenMP runtime reads these variables when it loads). It changes only what the user left
unset:

- ``GOMP_SPINCOUNT=10000`` (libgomp, which the torch wheels use; unless
  ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` is set);
- the thread count of OpenMP, MKL and OpenBLAS capped at the CPUs this process may use:
  its affinity mask and its cgroup CPU quota (a container limited to 2 CPUs on a
  64-core host otherwise runs 64 threads on 2 CPUs' worth of time).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
SPIN_COUNT = "10000"  # libgomp's default is 300,000; see the table above
COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup allows (quota / period), or None if unlimited."""
    candidates = [
        (root / "cpu.max", None),  # cgroup v2: "<quota|max> <period>"
        (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),  # v1
        (root / "cpu,cpuacct" / "cpu.cfs_quota_us", root / "cpu,cpuacct" / "cpu.cfs_period_us"),
    ]
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            value = int(quota) / int(period)
        except (ValueError, ZeroDivisionError):
            continue
        return value if value > 0 else None
    return None


def usable_cpus(quota: float | None = None) -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota() if quota is None else quota
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def configure_threads(
    environ: MutableMapping[str, str] | None = None, cpus: int | None = None
) -> dict[str, str]:
    """Set the thread variables the user left unset; return the ones set here.

    Call before torch (or numpy) is imported: the OpenMP and BLAS runtimes read them
    when they load. If torch is already loaded, its thread count is capped directly.
    """
    environ = os.environ if environ is None else environ
    chosen: dict[str, str] = {}
    if not any(name in environ for name in WAIT_VARIABLES):
        chosen["GOMP_SPINCOUNT"] = SPIN_COUNT
    cpus = usable_cpus() if cpus is None else cpus
    if not any(name in environ for name in COUNT_VARIABLES) and cpus < (os.cpu_count() or cpus):
        for name in COUNT_VARIABLES:
            chosen[name] = str(cpus)
    if environ is os.environ and "torch" in sys.modules:
        # too late for the runtimes' variables (e.g. the CLI called in-process by tests):
        # leave the environment alone, cap torch's own count if it is too high
        if "OMP_NUM_THREADS" in chosen:
            sys.modules["torch"].set_num_threads(cpus)
        return {}
    environ.update(chosen)
    return chosen
