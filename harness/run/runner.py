"""One run, top to bottom: load → select hyperparameters → run method → evaluate → record.

Reads like a recipe: every step is a call into the shared pieces (registry, suite,
selection, records), and every number in the record is measured here.
"""

from __future__ import annotations

import json
import random
import shlex
import time
from collections.abc import Mapping
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
from harness.run.records import SCHEMA_VERSION, ensure_writable, record_path, write_record
from harness.run.selection import STRATEGIES, Selection, select
from harness.suite import Suite, SuiteContext


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
        missing = [need for need in method.needs if need not in suite.obj.provides]
        if missing:
            raise HarnessError(cannot_apply(self.method, self.suite, missing))
        tasks = self.only or list(getattr(suite.obj, "tasks", []))
        if method.experts is not None and tasks and len(tasks) != method.experts:
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

    Cached by the identities of the suite's artifacts, so it is measured once per suite.
    """
    suite = context.suite
    identity = [artifact.to_json() for artifact in suite.artifacts()]
    key = content_key("individual", suite.name, suite.checkpoint_set, identity, suite.metric)
    path = cache_dir() / "individual" / f"{key}.json"
    known: dict[str, float] = {}
    if path.is_file():
        try:
            known = json.loads(path.read_text())
        except ValueError:
            known = {}
    missing = [task for task in suite.tasks if task not in known]
    for task in missing:
        model = context.build_model(context.pool.expert_state(task))
        known[task] = suite.evaluate(model, task, "test")[suite.metric]
    if missing:
        write_json_atomic(path, known)
    return {task: known[task] for task in suite.tasks}


def run(spec: RunSpec, *, overwrite: bool = False) -> tuple[dict[str, Any], Path]:
    """Run one method on one suite and write its record; returns (record, path)."""
    started = time.perf_counter()
    method_entry, _ = spec.entries()
    results_dir = ensure_writable(spec.results_dir)
    target = spec.path()
    if target.exists() and not overwrite:
        raise RecordError(
            f"this run is already recorded at {target}; pass --overwrite to replace it "
            "or --results to write elsewhere"
        )
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

    tick = time.perf_counter()
    seed_everything(spec.seed)
    solution: Solution = method_entry.obj(context, **selection.hyperparameters)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    method_s = time.perf_counter() - tick

    tick = time.perf_counter()
    scores = evaluate_solution(solution, context, "test")
    evaluate_s = time.perf_counter() - tick
    if spec.method == "individual":
        reference = {task: scores[task][suite.metric] for task in suite.tasks}
    else:
        reference = individual_reference(context)

    record = build_record(
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
            "evaluate_s": evaluate_s,
            "total_s": time.perf_counter() - started,
        },
    )
    if overwrite and target.exists():
        target.unlink()
    return record, write_record(results_dir, record)


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
        "peak_memory": peak_memory(device),
        "extra_parameters": int(solution.extra_parameters),
        "method_info": solution.info,
        "command": spec.command(),
    }
