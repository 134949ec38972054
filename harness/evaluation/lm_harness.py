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
import functools
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.cache import atomic_path
from harness.errors import HarnessError
from harness.progress import bars_enabled


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

    try:
        return dict(load_yaml(entry.yaml_path, resolve_func=True))
    except ImportError as error:  # a task's own helpers import optional packages
        missing = getattr(error, "name", None) or str(error)
        raise LmEvalError(
            f"lm-eval task {name!r} needs the package {missing!r}, which is not installed; "
            f"pip install {missing}"
        ) from None


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
        config["dataset_path"] = data_builder(task.data_files.values())
        config["dataset_kwargs"] = {"data_files": {k: str(v) for k, v in task.data_files.items()}}
    config.update(copy.deepcopy(dict(task.overrides)))
    return config


def data_builder(files: Iterable[str | Path]) -> str:
    """The ``datasets`` builder that reads local ``files``: ``parquet``, or ``json`` for
    JSON lines (Belebele's hub files are ``data/<code>.jsonl``); one kind per task."""
    kinds = {"json" if str(path).endswith((".jsonl", ".json")) else "parquet" for path in files}
    if len(kinds) != 1:
        raise LmEvalError(f"a task's local files must be all parquet or all JSON lines: {kinds}")
    return kinds.pop()


#: What lm-eval's regex filters return when a response holds no answer they can extract.
NO_ANSWER = "[invalid]"


def no_answer_percent(samples: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``{"no_answer,<filter>": %}``: the share of generated responses in which a filter
    found no answer (lm-eval scores those as wrong; here they are also counted, since a
    merge that stops writing ``#### N`` differs from one that computes wrong numbers)."""
    counts: dict[str, list[int]] = {}
    for sample in samples:
        responses = sample.get("filtered_resps")
        if isinstance(responses, list):
            responses = responses[0] if len(responses) == 1 else None
        if not isinstance(responses, str):
            continue  # loglikelihood tasks: nothing is generated
        seen = counts.setdefault(str(sample.get("filter", "none")), [0, 0])
        seen[0] += responses.strip() == NO_ANSWER
        seen[1] += 1
    return {f"no_answer,{name}": 100.0 * hit / total for name, (hit, total) in counts.items()}


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
    apply_chat_template: bool = False,
) -> dict[str, LmScore]:
    """Score ``model`` (in memory) on ``tasks`` with lm-eval; greedy, seeded few-shot.

    ``limit`` caps each task's documents (lm-eval takes the first ``limit``). The per-task
    sample logs go to ``samples_dir`` when given. ``apply_chat_template`` wraps each
    prompt in the tokenizer's chat template (instruction-tuned models, ifeval).
    """
    require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    configs = [task_config(task) for task in tasks]
    if apply_chat_template:
        require_chat_template(tokenizer, [task.name for task in tasks])
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
    return score_lm(
        wrapped,
        tasks,
        configs,
        limit=limit,
        seed=seed,
        samples_dir=samples_dir,
        apply_chat_template=apply_chat_template,
        backend="hf",
    )


def require_chat_template(tokenizer: Any, names: Sequence[str]) -> None:
    """A task scored through a chat template needs a tokenizer that has one."""
    if not getattr(tokenizer, "chat_template", None):
        raise LmEvalError(
            f"{', '.join(names)} must be scored through a chat template, but the tokenizer "
            f"({getattr(tokenizer, 'name_or_path', '') or 'given'}) has none: a base model "
            "cannot run it; use an instruction-tuned base or leave the task out"
        )


# lm-eval's requests, each of which takes ``disable_tqdm`` on lm-eval's LM classes
_REQUEST_TYPES = ("generate_until", "loglikelihood", "loglikelihood_rolling")


@contextmanager
def lm_eval_bars(lm: Any) -> Iterator[None]:
    """lm-eval's own bars follow the harness's switch (``harness.progress``): off in a
    redirected log or with ``--quiet``. Its request bars are turned off through their
    ``disable_tqdm`` argument (lm-eval's evaluator never passes it), and the bar it draws
    while building each task's requests, which has no switch, by a silent ``tqdm`` in
    that module for the duration of the call."""
    if bars_enabled():
        yield
        return
    import lm_eval.api.task as task_module
    from tqdm import tqdm

    patched = []
    for request_type in _REQUEST_TYPES:
        method = getattr(lm, request_type, None)
        if method is not None and "disable_tqdm" in inspect.signature(method).parameters:
            setattr(lm, request_type, functools.partial(method, disable_tqdm=True))
            patched.append(request_type)
    drawn = task_module.tqdm
    task_module.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        task_module.tqdm = drawn
        for request_type in patched:
            delattr(lm, request_type)  # the class's method again


def score_lm(
    lm: Any,
    tasks: Sequence[LmTask],
    configs: Sequence[dict[str, Any] | str],
    *,
    limit: int | None,
    seed: int,
    samples_dir: Path | None,
    apply_chat_template: bool,
    backend: str,
) -> dict[str, LmScore]:
    """Run lm-eval with an already built LM object (HF in memory, or vLLM) and collect
    each task's metrics and protocol details."""
    lm_eval = require_lm_eval()
    from datasets.exceptions import DatasetGenerationError
    from lm_eval import simple_evaluate

    try:
        with lm_eval_bars(lm):
            output = simple_evaluate(
                model=lm,
                tasks=list(configs),
                task_manager=task_manager(),
                limit=limit,
                # the no-answer counts read the samples; written only to samples_dir
                log_samples=True,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
                bootstrap_iters=0,
                apply_chat_template=apply_chat_template,
            )
    except (KeyError, ValueError, FileNotFoundError, DatasetGenerationError) as error:
        cause = error.__cause__ if isinstance(error, DatasetGenerationError) else None
        reason = f"{error} ({type(cause).__name__}: {cause})" if cause else str(error)
        raise LmEvalError(f"lm-eval could not run {[t.name for t in tasks]}: {reason}") from error
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
        samples = output["samples"][task.name]
        metrics.update(no_answer_percent(samples))
        details: dict[str, Any] = {
            "lm_eval_version": lm_eval.__version__,
            "task": task.name,
            "task_version": output["versions"].get(task.name),
            "n_shot": output["n-shot"].get(task.name),
            "filters": [f.get("name") for f in config.get("filter_list") or []] or ["none"],
            "ranked_by": task.metric,
            "dataset": config.get("dataset_kwargs") or config.get("dataset_path"),
            "backend": backend,
            "chat_template": bool(apply_chat_template),
        }
        if samples_dir is not None:
            details["samples_log"] = str(_write_samples(samples, samples_dir, task.name))
        n = int(output["n-samples"][task.name]["effective"])
        scores[task.name] = LmScore(metrics, n, details)
    return scores
