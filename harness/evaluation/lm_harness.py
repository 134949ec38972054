"""Score an in-memory causal LM with EleutherAI's lm-evaluation-harness (lm-eval).

A merged model goes to lm-eval as an object (``HFLM(pretrained=model, tokenizer=...)``):
nothing is written to disk between merge and score. A task is one of lm-eval's registered
tasks (``gsm8k``, ``mgsm_direct_sw``, ``xnli_en``...) with its own prompt, few-shot
sampling, filters and metrics; where its data comes from a local mirror, the registered
config is loaded and only its dataset is pointed at parquet files (``dataset_path:
parquet``, ``data_files``), so the protocol is lm-eval's own, offline. Suites the harness
builds itself (minimath) pass a whole task config in lm-eval's format instead.

Every score keeps what a reader needs to trust it: lm-eval's version, the task's version,
n-shot, the filters, and where the per-sample log (prompt, response, filtered answer,
per-sample metrics) was written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.cache import atomic_path
from harness.errors import HarnessError


class LmEvalError(HarnessError):
    """lm-eval is missing, or a task it cannot run."""


@dataclass(frozen=True)
class LmTask:
    """One lm-eval task as a suite scores it.

    ``name`` is a registered lm-eval task, or the ``task`` of ``config`` (a full task
    config in lm-eval's YAML schema, for tasks the harness defines). ``data_files`` maps
    split names to local parquet files (a mirror): the task reads those instead of its
    hub dataset. ``overrides`` change config keys (e.g. ``num_fewshot``), and are recorded.
    ``metric`` is the ``"<metric>,<filter>"`` key of lm-eval's results the suite ranks by.
    """

    name: str
    metric: str
    data_files: Mapping[str, str] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LmScore:
    """lm-eval's metrics for one task (percent where lm-eval gives a fraction) and the
    protocol details that go into the record."""

    metrics: dict[str, float]
    n: int
    details: dict[str, Any]


def require_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as error:
        raise LmEvalError(
            "lm-eval is not installed; install the harness with the lm extra: "
            "pip install -e '.[lm]'"
        ) from error
    return lm_eval


_TASK_MANAGER: Any = None


def task_manager() -> Any:
    """lm-eval's index of registered tasks (built once per process: it scans ~10k YAMLs)."""
    global _TASK_MANAGER
    if _TASK_MANAGER is None:
        require_lm_eval()
        from lm_eval.tasks import TaskManager

        _TASK_MANAGER = TaskManager()
    return _TASK_MANAGER


def registered_config(name: str) -> dict[str, Any]:
    """The YAML config lm-eval registers as ``name`` (includes resolved)."""
    manager = task_manager()
    entry = manager.task_index.get(name)
    if entry is None or entry.yaml_path is None:
        raise LmEvalError(
            f"lm-eval {require_lm_eval().__version__} has no task {name!r}; list its tasks "
            "with `lm-eval ls tasks`"
        )
    from lm_eval.tasks._yaml_loader import load_yaml

    return dict(load_yaml(entry.yaml_path, resolve_func=True))


def task_config(task: LmTask) -> dict[str, Any] | str:
    """What lm-eval is given for ``task``: its name when nothing changes, else a config."""
    if task.config is None and not task.data_files and not task.overrides:
        registered_config(task.name)  # unknown names fail here, in one line
        return task.name
    config = copy.deepcopy(dict(task.config)) if task.config else registered_config(task.name)
    config["task"] = task.name
    for key in ("tag", "group"):
        config.pop(key, None)
    if task.data_files:
        for split_key in ("test_split", "training_split", "validation_split", "fewshot_split"):
            split = config.get(split_key)
            if split and split not in task.data_files:
                raise LmEvalError(
                    f"lm-eval task {task.name!r} reads split {split!r}, which the mirror lacks; "
                    f"it has {', '.join(sorted(task.data_files))}"
                )
        config.pop("dataset_name", None)
        config["dataset_path"] = "parquet"
        config["dataset_kwargs"] = {"data_files": {k: str(v) for k, v in task.data_files.items()}}
    config.update(copy.deepcopy(dict(task.overrides)))
    return config


def _percent(name: str, value: float) -> float:
    """lm-eval reports accuracies as fractions; the harness's tables are in percent."""
    return 100.0 * value if name.split(",")[0] in _FRACTIONS else value


_FRACTIONS = {"exact_match", "acc", "acc_norm", "f1", "mcc", "em"}


def _write_samples(samples: Sequence[Mapping[str, Any]], directory: Path, task: str) -> Path:
    """The per-sample log as JSON lines, named by its content (written once, atomically)."""
    lines = [json.dumps(sample, default=str, sort_keys=True) for sample in samples]
    body = "\n".join(lines) + "\n"
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    path = directory / f"{task}-{digest}.jsonl"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            temporary.write_text(body)
    return path


def score(
    model: torch.nn.Module,
    tokenizer: Any,
    tasks: Sequence[LmTask],
    *,
    limit: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    samples_dir: Path | None = None,
    max_length: int | None = None,
) -> dict[str, LmScore]:
    """Score ``model`` (in memory) on ``tasks`` with lm-eval; greedy, seeded few-shot.

    ``limit`` caps each task's documents (lm-eval takes the first ``limit``). The per-task
    sample logs go to ``samples_dir`` when given.
    """
    lm_eval = require_lm_eval()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    configs = [task_config(task) for task in tasks]
    # HFLM warns at length that a model object bypasses its loading options; that is the point.
    logging.getLogger("lm_eval.models.huggingface").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = next(model.parameters()).device
    wrapped = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        device=str(device),
        max_length=max_length,
    )
    try:
        output = simple_evaluate(
            model=wrapped,
            tasks=configs,
            task_manager=task_manager(),
            limit=limit,
            log_samples=samples_dir is not None,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            bootstrap_iters=0,
        )
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise LmEvalError(f"lm-eval could not run {[t.name for t in tasks]}: {error}") from error
    scores = {}
    for task in tasks:
        results = output["results"][task.name]
        if task.metric not in results:
            known = sorted(k for k in results if "," in k and "_stderr" not in k)
            raise LmEvalError(
                f"lm-eval task {task.name!r} reports no {task.metric!r}; it reports "
                f"{', '.join(known)}"
            )
        metrics = {
            key: _percent(key, float(value))
            for key, value in results.items()
            if "," in key and "_stderr" not in key and isinstance(value, int | float)
        }
        config = output["configs"][task.name]
        details: dict[str, Any] = {
            "lm_eval_version": lm_eval.__version__,
            "task": task.name,
            "task_version": output["versions"].get(task.name),
            "n_shot": output["n-shot"].get(task.name),
            "filters": [f.get("name") for f in config.get("filter_list") or []] or ["none"],
            "ranked_by": task.metric,
            "dataset": config.get("dataset_kwargs") or config.get("dataset_path"),
        }
        if samples_dir is not None:
            samples = output["samples"][task.name]
            details["samples_log"] = str(_write_samples(samples, samples_dir, task.name))
        n = int(output["n-samples"][task.name]["effective"])
        scores[task.name] = LmScore(metrics, n, details)
    return scores
