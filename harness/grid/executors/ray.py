"""Cells as Ray tasks: on this machine, or on a cluster (``--address auto|ray://...``).

Each cell is one remote task asking for ``--gpus-per-cell`` GPUs (fractions pack several
small cells on one large GPU: Ray gives each task a CUDA_VISIBLE_DEVICES, and a cell that
got a GPU runs on ``cuda``), ``--cpus-per-cell`` CPUs and ``--mem`` GB. A worker process
that dies is retried by Ray (``max_retries``); its retry takes the cell's lock over, as
the lock names the same task. Without an address Ray starts here with this machine's
CPUs and GPUs and stops when the grid ends; an already initialised Ray is reused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.grid.executors.base import (
    NO_REQUESTS,
    POLL_S,
    Executor,
    Lost,
    Resources,
    import_engine,
)

GIB = 1024**3
CANCEL_S = 5.0  # how long cancelled cells get to stop on their own


def _in_worker(fn: Callable[[Any, str], Any], item: Any, environment: dict[str, str]) -> Any:
    """What runs in the Ray worker: the driver's variables, then ``fn`` under the task id."""
    import ray

    from harness.grid.cell import enter_worker

    enter_worker(environment)
    return fn(item, "ray:" + ray.get_runtime_context().get_task_id())


class RayExecutor(Executor):
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        resources: Resources = NO_REQUESTS,
        max_retries: int = 2,
        max_parallel: int | None = None,
    ) -> None:
        self.address = address
        self.resources = resources
        self.max_retries = max_retries
        super().__init__()
        self.max_parallel = max_parallel
        self._started = False
        self.gpus = 0.0

    def start(self) -> None:
        ray = import_engine("ray", "ray")
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            try:
                if self.address:
                    ray.init(address=self.address, **options)
                else:
                    import torch

                    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
                    ray.init(num_cpus=cpus, num_gpus=torch.cuda.device_count(), **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = self.address or "this machine"
                first = str(error).strip().splitlines()[0] if str(error).strip() else error
                raise HarnessError(
                    f"cannot start Ray on {where} ({first}); for a cluster pass "
                    "--address auto on one of its nodes, or --address ray://HEAD:10001"
                ) from None
            self._started = True
        cluster = ray.cluster_resources()
        available = float(cluster.get("GPU", 0))
        requested = self.resources.gpus
        self.gpus = (1.0 if available else 0.0) if requested is None else float(requested)
        if self.gpus > available:
            raise HarnessError(
                f"--gpus-per-cell {self.gpus:g} but the Ray cluster has {available:g} GPUs; "
                "ask for fewer (0 runs cells on CPU)"
            )
        if self.gpus > 1 and not self.gpus.is_integer():
            raise HarnessError("--gpus-per-cell above 1 must be a whole number")

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def describe(self) -> str:
        where = self.address or "this machine"
        return f"ray on {where}, {self.gpus:g} GPU per cell"

    def _remote(self) -> Any:
        import ray

        options: dict[str, Any] = {
            "num_gpus": self.gpus,
            "num_cpus": self.resources.cpus if self.resources.cpus is not None else 1,
            "max_retries": self.max_retries,
            "retry_exceptions": False,  # a cell's own errors are failure files, not retries
        }
        if self.resources.mem_gb:
            options["memory"] = int(self.resources.mem_gb * GIB)
        return ray.remote(_in_worker).options(**options)

    def map(
        self,
        fn: Callable[[Any, str], Any],
        items: Sequence[Any],
        tick: Callable[[], None] = lambda: None,
    ) -> Iterator[tuple[int, Any]]:
        import ray
        from ray.exceptions import RayError

        from harness.grid.cell import worker_environment

        remote = self._remote()
        environment = worker_environment()
        queue = list(enumerate(items))
        window = self.max_parallel or len(queue) or 1
        in_flight: dict[Any, int] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    index, item = queue.pop(0)
                    in_flight[remote.remote(fn, item, environment)] = index
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    index = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RayError as error:  # the worker or its node died (after retries)
                        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                        result = Lost(
                            f"{type(error).__name__}: {reason}"[:300],
                            job="ray:" + ref.task_id().hex(),
                        )
                    yield index, result
                tick()
        finally:  # finished, or interrupted: nothing of ours keeps running
            self._cancel(in_flight)

    def _cancel(self, in_flight: dict[Any, int]) -> None:
        """Interrupt the tasks (their cells release their locks), then kill the stragglers.

        A killed task cannot release its lock: its job id is left in ``killed`` for the
        driver to release.
        """
        import ray

        if not in_flight:
            return
        for ref in in_flight:
            ray.cancel(ref, force=False)  # KeyboardInterrupt in the cell
        _, stragglers = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=CANCEL_S)
        for ref in stragglers:
            ray.cancel(ref, force=True)
            self.killed[in_flight[ref]] = "ray:" + ref.task_id().hex()
