"""One run, top to bottom: load → select hyperparameters → run method → evaluate → record.

Reads like a recipe: every step is a call into the shared pieces (registry, suite,
selection, records), and every number in the record is measured here.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import os
import random
import resource
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.cache import cache_dir, content_key, write_json_atomic
from harness.errors import HarnessError, RecordError
from harness.method import MethodContext, Solution, cannot_apply, wrong_expert_count
from harness.registry import METHODS, SUITES, Entry
from harness.run.provenance import environment, peak_memory, resolve_device
from harness.run.records import (
    SCHEMA_VERSION,
    cell_lock,
    ensure_writable,
    existing_record,
    record_path,
    set_aside,
    write_record,
)
from harness.run.selection import STRATEGIES, Selection, select
from harness.suite import Suite, SuiteContext, provides_need


@dataclass
class RunSpec:
    """Everything that defines a run; two equal specs describe the same grid cell."""

    method: str
    suite: str
    overrides: dict[str, Any] = field(default_factory=dict)
    suite_options: dict[str, Any] = field(default_factory=dict)
    only: list[str] | None = None
    select: str = "grid"
    seed: int = 0
    device: str = "auto"
    results_dir: Path = Path("results")
    mirror: Path | None = None
    progress: bool = True
    validation_limit: int | None = None

    def entries(self) -> tuple[Entry, Entry]:
        """Look up and check names and values before any expensive work."""
        method = METHODS.get(self.method)
        suite = SUITES.get(self.suite)
        method.resolve_params(self.overrides)
        suite.resolve_params(self.suite_options)
        if self.select not in STRATEGIES:
            raise HarnessError(f"--select must be one of {', '.join(STRATEGIES)}")
        families = suite.obj.method_families
        if families is not None and method.family not in families:
            raise HarnessError(
                f"{self.method} ({method.family}) cannot run on {self.suite}: only "
                f"{', '.join(families)} methods do; pick one with harness list methods"
            )
        missing = [need for need in method.needs if not provides_need(suite.obj.provides, need)]
        if missing:
            raise HarnessError(cannot_apply(self.method, self.suite, missing))
        tasks = self.only or list(getattr(suite.obj, "tasks", []))
        # up front only where tasks are the pool's experts; otherwise the method checks
        # the pool itself once it is loaded (require_experts)
        one_expert_per_task = suite.obj.tasks_are_experts and not suite.obj.reference_experts
        if (
            one_expert_per_task
            and method.experts is not None
            and tasks
            and len(tasks) != method.experts
        ):
            found = f"{self.suite} would give it {len(tasks)}"
            raise HarnessError(wrong_expert_count(self.method, method.experts, found))
        return method, suite

    def run_id(self) -> str:
        method, suite = self.entries()
        key = content_key(
            self.method,
            self.suite,
            method.resolve_params(self.overrides) if self.overrides else {},
            sorted(self.overrides),
            suite.resolve_params(self.suite_options),
            self.only or [],
            self.select,
            self.seed,
            self.validation_limit,
        )
        return f"{self.method}__{self.suite}__seed{self.seed}__{key[:8]}"

    def path(self) -> Path:
        stub = {"suite": {"name": self.suite}, "method": {"name": self.method}}
        return record_path(self.results_dir, {**stub, "run_id": self.run_id()})

    def command(self) -> str:
        """The exact command line that reproduces this run."""
        parts = ["harness", "eval", "--method", self.method, "--tasks", self.suite]
        for key, value in sorted(self.overrides.items()):
            parts += ["--set", f"{key}={value}"]
        for key, value in sorted(self.suite_options.items()):
            parts += ["--suite-set", f"{key}={value}"]
        if self.only:
            parts += ["--only", ",".join(self.only)]
        if self.select != "grid":
            parts += ["--select", self.select]
        if self.validation_limit is not None:
            parts += ["--validation-limit", str(self.validation_limit)]
        parts += ["--seed", str(self.seed)]
        return shlex.join(parts)


MIB = 1 << 20


def current_rss() -> int | None:
    """This process's resident memory now, in bytes (None where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def max_rss() -> int:
    """The process's RSS high-water mark in bytes (ru_maxrss: KiB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc), so the baseline RSS is live memory.

    Without it, memory freed by the selection runs can stay resident (heap fragments:
    40 freed 9 MiB tensors interleaved with small live ones kept 136 MiB) and the method
    step would reuse it without any RSS growth, reading as free.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: a lower bound then
        ctypes.CDLL(None).malloc_trim(0)  # the symbols already loaded: glibc's, on Linux


class StepMemory:
    """Peak memory of one step above what was resident when it began.

    CPU: RSS sampled in a thread every ``interval_s`` (ru_maxrss never goes down, so on
    its own it only sees a step that sets a new process high; when it does, its exact
    value is used too). CUDA: ``max_memory_allocated`` after a reset, minus what was
    allocated before. The thread reads /proc while torch computes without the GIL.
    """

    interval_s = 0.002

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.cuda_peak_before = 0
        self.cpu_bytes = 0
        self.cuda_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StepMemory:
        release_free_heap()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.cuda_peak_before = int(torch.cuda.max_memory_allocated(self.device))
            torch.cuda.reset_peak_memory_stats(self.device)
            self._cuda_base = int(torch.cuda.memory_allocated(self.device))
        self._max_rss_before = max_rss()
        self._base = current_rss()
        self._peak = self._base or 0
        if self._base is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, current_rss() or 0)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, current_rss() or 0)
        high = max_rss()
        if high > self._max_rss_before:  # the step set a new process high: exact peak
            self._peak = max(self._peak, high)
        base = self._base if self._base is not None else self._max_rss_before
        self.cpu_bytes = max(0, self._peak - base)
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = int(torch.cuda.max_memory_allocated(self.device))
            self.cuda_bytes = max(0, peak - self._cuda_base)

    def fields(self) -> dict[str, Any]:
        """The record's ``peak_memory.method_*`` fields (MiB, one decimal)."""
        cpu = round(self.cpu_bytes / MIB, 1)
        if self.cuda_bytes is not None:
            return {
                "method_mib": round(self.cuda_bytes / MIB, 1),
                "method_measure": "cuda_allocated",
                "method_rss_mib": cpu,
            }
        return {"method_mib": cpu, "method_measure": "cpu_rss", "method_rss_mib": cpu}


class PerTaskCost:
    """Seconds and peak memory of building a solution's per-task models.

    Methods that return ``task_states`` or ``task_modules`` (TALL masks, EMR, PERU,
    routers, the experts themselves) do their per-task work when the suite asks for a
    task's model, not in the method step; without this their merge would read as free.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self.steps: list[StepMemory] = []

    def wrap(self, solution: Solution) -> Solution:
        """The same solution, with every per-task build measured."""
        if solution.task_states is not None:
            return dataclasses.replace(solution, task_states=self._measured(solution.task_states))
        if solution.task_modules is not None:
            return dataclasses.replace(solution, task_modules=self._measured(solution.task_modules))
        return solution

    def _measured(self, build: Callable[[str], Any]) -> Callable[[str], Any]:
        def measured(task: str) -> Any:
            with StepMemory(self.device) as memory:
                tick = time.perf_counter()
                result = build(task)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.seconds += time.perf_counter() - tick
            self.steps.append(memory)
            return result

        return measured


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_suite(spec: RunSpec, device: torch.device) -> Suite:
    entry = SUITES.get(spec.suite)
    options = entry.resolve_params(spec.suite_options)
    suite: Suite = entry.obj(
        SuiteContext(
            mirror=spec.mirror,
            cache_dir=cache_dir(),
            device=device,
            seed=spec.seed,
            progress=spec.progress,
            options=options,
        )
    )
    suite.select_tasks(spec.only)
    suite.prepare()
    return suite


def evaluate_solution(
    solution: Solution, context: MethodContext, split: str, limit: int | None = None
) -> dict[str, dict[str, float]]:
    """Per-task metrics of a method's solution on one split."""
    return {
        task: context.suite.evaluate(solution.model_for(task, context), task, split, limit=limit)
        for task in context.suite.tasks
    }


def individual_reference(context: MethodContext) -> dict[str, float]:
    """Each expert's test metric on its own task: the denominator of normalised accuracy.

    A task without an expert of its own (``Suite.reference_experts``) is referred to the
    best of the experts it is composed from, so a normalised score above 100 there means
    a merge beat all of them. Cached by the identities of the suite's artifacts, so it is
    measured once per suite.
    """
    suite = context.suite
    identity = [artifact.to_json() for artifact in suite.artifacts()]
    # the suite's options too: they may change how a task is scored (an LLM suite's limit,
    # generation length or benchmark), not only which checkpoints are used
    key = content_key(
        "individual",
        suite.name,
        suite.checkpoint_set,
        identity,
        suite.metric,
        suite.context.options,
        list(suite.tasks),
    )
    path = cache_dir() / "individual" / f"{key}.json"
    known: dict[str, float] = {}
    if path.is_file():
        try:
            known = json.loads(path.read_text())
        except ValueError:
            known = {}
    missing = [task for task in suite.tasks if task not in known]
    for task in missing:
        scores = [
            suite.evaluate(context.build_model(context.pool.expert_state(expert)), task, "test")
            for expert in suite.reference_experts.get(task, (task,))
        ]
        known[task] = max(score[suite.metric] for score in scores)
    if missing:
        write_json_atomic(path, known)
    return {task: known[task] for task in suite.tasks}


@dataclass(frozen=True)
class RunOutcome:
    """What ``run_cell`` did: ``ran`` is False when the record was already there."""

    record: dict[str, Any]
    path: Path
    ran: bool


def run_cell(
    spec: RunSpec,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    on_start: Callable[[], None] | None = None,
    job: str = "",
) -> RunOutcome:
    """Run one cell unless a valid record of it exists (then return that record).

    The cell is locked while it runs, so another process sharing the results directory
    skips it (CellLockedError) instead of running it twice. A corrupt record is moved
    aside (``log`` says which file and why) and the cell is run again. ``on_start`` is
    called once the cell is really about to run. ``job`` is the engine's id of the job
    running it (Ray, Slurm), written into the lock (see :func:`cell_lock`).
    """
    log = log or (lambda line: print(line, file=sys.stderr))
    spec.entries()
    results_dir = ensure_writable(spec.results_dir)
    target = spec.path()
    if not overwrite:
        try:  # a valid record is final: no lock needed to read it
            recorded = existing_record(target)
        except RecordError:
            recorded = None  # dealt with under the lock below
        if recorded is not None:
            return RunOutcome(recorded, target, ran=False)
    with cell_lock(target, command=spec.command(), job=job):
        try:
            recorded = existing_record(target)
        except RecordError as error:
            aside = set_aside(target)
            log(f"corrupt record {error}; moved it to {aside.name} and running the cell again")
            recorded = None
        if recorded is not None and not overwrite:  # written by another process meanwhile
            return RunOutcome(recorded, target, ran=False)
        if on_start is not None:
            on_start()
        record = measure(spec)
        path = write_record(results_dir, record, replace=overwrite)
    return RunOutcome(record, path, ran=True)


def run(spec: RunSpec, *, overwrite: bool = False) -> tuple[dict[str, Any], Path]:
    """Run one method on one suite and write its record; returns (record, path).

    An existing valid record is returned as it is unless ``overwrite``.
    """
    outcome = run_cell(spec, overwrite=overwrite)
    return outcome.record, outcome.path


def measure(spec: RunSpec) -> dict[str, Any]:
    """Load, select, run the method, evaluate: the record of one run (not yet written)."""
    started = time.perf_counter()
    method_entry, _ = spec.entries()
    device = resolve_device(spec.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seed_everything(spec.seed)

    suite = load_suite(spec, device)
    pool = suite.pool()
    context = MethodContext(suite, pool, device, seed=spec.seed, progress=spec.progress)
    load_s = time.perf_counter() - started

    def validation_score(hyperparameters: dict[str, Any]) -> float:
        seed_everything(spec.seed)
        solution = method_entry.obj(context, **hyperparameters)
        scores = evaluate_solution(solution, context, "validation", spec.validation_limit)
        return float(np.mean([metrics[suite.metric] for metrics in scores.values()]))

    tick = time.perf_counter()
    selection: Selection = select(
        method_entry, spec.overrides, spec.select, validation_score, metric=suite.metric
    )
    select_s = time.perf_counter() - tick

    seed_everything(spec.seed)
    with StepMemory(device) as method_memory:
        tick = time.perf_counter()
        solution: Solution = method_entry.obj(context, **selection.hyperparameters)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        method_s = time.perf_counter() - tick

    per_task = PerTaskCost(device)
    tick = time.perf_counter()
    scores = evaluate_solution(per_task.wrap(solution), context, "test")
    evaluate_s = time.perf_counter() - tick - per_task.seconds
    details = {task: dict(suite.evaluation_details(task)) for task in suite.tasks}
    summary = dict(suite.evaluation_summary())
    if spec.method == "individual" and not set(suite.tasks) & set(suite.reference_experts):
        reference = {task: scores[task][suite.metric] for task in suite.tasks}
    elif (known := suite.reference_scores()) is not None:
        reference = dict(known)
    else:
        reference = individual_reference(context)

    steps = [method_memory, *per_task.steps]  # the method's own work: step + per-task builds
    memory: dict[str, Any] = peak_memory(device)
    if memory.get("cuda_bytes") is not None:  # each step reset CUDA's peak counter
        memory["cuda_bytes"] = max(memory["cuda_bytes"], *(s.cuda_peak_before for s in steps))
    memory.update(max((step.fields() for step in steps), key=lambda f: f["method_mib"]))
    return build_record(
        spec,
        method_entry,
        suite,
        selection,
        solution,
        scores,
        reference,
        device,
        timings={
            "load_s": load_s,
            "select_s": select_s,
            "method_s": method_s,
            "per_task_s": per_task.seconds,
            "evaluate_s": evaluate_s,
            "total_s": time.perf_counter() - started,
        },
        memory=memory,
        details=details,
        summary=summary,
    )


def build_record(
    spec: RunSpec,
    method_entry: Entry,
    suite: Suite,
    selection: Selection,
    solution: Solution,
    scores: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, float],
    device: torch.device,
    *,
    timings: dict[str, float],
    memory: dict[str, Any],
    details: Mapping[str, Mapping[str, Any]] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    tasks = {}
    for task in suite.tasks:
        metric = float(scores[task][suite.metric])
        individual = reference.get(task)
        tasks[task] = {
            "metric": metric,
            "individual": individual,
            "normalized": 100.0 * metric / individual if individual else None,
            "n": int(scores[task].get("n", 0)),
            "metrics": {name: float(value) for name, value in scores[task].items()},
        }
        if details and details.get(task):
            tasks[task]["details"] = dict(details[task])
    normalized = [entry["normalized"] for entry in tasks.values()]
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": spec.run_id(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": {
            "name": method_entry.name,
            "family": method_entry.family,
            "reference": method_entry.reference,
        },
        "hyperparameters": selection.hyperparameters,
        "selection": selection.to_json(),
        "suite": {
            "name": suite.name,
            "checkpoint_set": suite.checkpoint_set,
            "metric": suite.metric,
            "tasks": list(suite.tasks),
            "options": suite.context.options,
            **({"splits": dict(suite.splits)} if suite.splits else {}),
            **({"summary": dict(summary)} if summary else {}),
        },
        "tasks": tasks,
        "average": float(np.mean([entry["metric"] for entry in tasks.values()])),
        "normalized_average": (
            float(np.mean(normalized)) if all(v is not None for v in normalized) else None
        ),
        "artifacts": [artifact.to_json() for artifact in suite.artifacts()],
        "seed": spec.seed,
        "environment": environment(device),
        "timings": timings,
        "peak_memory": memory,
        "extra_parameters": int(solution.extra_parameters),
        "method_info": solution.info,
        "command": spec.command(),
    }
