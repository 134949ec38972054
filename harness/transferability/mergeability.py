"""Merge-ability prediction: do pre-merge signals rank the merges a leaderboard recorded?

Before merging, a user can measure the expert pool (data-free) or look at the merged
model's features on the tasks' training inputs, but not its test accuracy. This module
scores such signals against what merges actually reached, across the leaderboard's own
records: every merge record (method family ``merging``) of a suite is one point at the
*record* level (its normalised average accuracy) and one point per task at the *task*
level (the merged model's normalised accuracy on that task). Per suite and level, each
signal is scored like a transferability estimator: weighted Kendall τ
(``scipy.stats.weightedtau``, top ranks weigh more) and Pearson r against the accuracy.

Signals, each oriented so that higher = the merge is expected to go better:

- ``cosine``: cosine similarity of task vectors τ_t = θ_t − θ_0 (record level: the mean
  over task pairs; task level: the task's mean cosine to the other tasks). Aligned task
  vectors interfere less.
- ``sign_conflict`` (scored negated): TIES' sign conflict (Yadav et al. 2023, §3): each
  task vector trimmed to its top-20% magnitudes over the whole model, the sign elected by
  total mass per parameter. Record level: the fraction of parameters, among those some
  trimmed task vector touches, whose non-zero trimmed values hold both signs; task level:
  the fraction of the task's kept entries whose sign loses the election.
- ``norm_spread`` (scored negated): record level: the coefficient of variation of the
  task vectors' L2 norms (a large vector drowns the others in a sum); task level: the
  task's |log ‖τ_t‖ − mean_s log ‖τ_s‖|.
- an estimator (LogME by default, any registered feature-based transferability
  estimator by name) applied to the merged model's features on each task's training
  inputs with their labels; record level: its mean over tasks. It needs the merge rebuilt
  from the record (method, hyperparameters, seed), so features are cached per record.

The pool signals depend only on the suite's pool and the record's task set, so at the
record level they are constant across records of one suite (reported as such, no τ):
they separate tasks, not methods; the estimator separates both.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from scipy import stats

from harness.cache import atomic_path, cached_directory, content_key, write_json_atomic
from harness.errors import HarnessError
from harness.progress import note, progress_bar
from harness.weights.pool import ExpertPool, TensorGroup

VERSION = 1
KIND = "mergeability"
#: TIES' default trim: each task vector keeps its top 20% magnitudes.
DENSITY = 0.2
#: Examples of each task's training split the estimator sees (zoo-mini8 uses 1,000).
EXAMPLES = 500
POOL_SIGNALS = ("cosine", "sign_conflict", "norm_spread")
#: +1: higher predicts a better merge; -1: lower does (the signal is negated when scored).
ORIENTATION = {"cosine": 1, "sign_conflict": -1, "norm_spread": -1}
LEVELS = ("record", "task")
#: Baselines and oracles are not merges: an ensemble or the experts themselves say
#: nothing about how mergeable a pool is.
NOT_MERGES = frozenset({"individual", "ensemble", "pretrained"})


# ---------------------------------------------------------------- pool statistics
@dataclass(frozen=True)
class PoolStatistics:
    """Whole-model sums over a pool's task vectors, from one streaming pass.

    ``gram[s, t]`` = ⟨τ_s, τ_t⟩; ``kept[t]``: non-zero entries of τ_t kept by the top-k
    trim; ``lost[t]``: those whose sign loses the election; ``conflicted``: parameters
    whose kept values hold both signs; ``touched``: parameters some kept value touches.
    """

    tasks: list[str]
    gram: list[list[float]]
    kept: list[float]
    lost: list[float]
    conflicted: float
    touched: float
    density: float

    def norms(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(np.asarray(self.gram)), 0.0, None))

    def cosines(self) -> np.ndarray:
        norms = self.norms()
        outer = np.outer(norms, norms)
        gram = np.asarray(self.gram)
        return np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)

    def record_signals(self) -> dict[str, float]:
        """Pool-level signals: mean pairwise cosine, conflict rate, norm spread."""
        count = len(self.tasks)
        cosines = self.cosines()
        pairs = [cosines[s, t] for s in range(count) for t in range(s + 1, count)]
        norms = self.norms()
        return {
            "cosine": float(np.mean(pairs)) if pairs else 1.0,
            "sign_conflict": self.conflicted / self.touched if self.touched else 0.0,
            "norm_spread": float(norms.std() / norms.mean()) if norms.mean() > 0 else 0.0,
        }

    def task_signals(self) -> dict[str, dict[str, float]]:
        """Per-task signals: mean cosine to the others, lost-election rate, |log-norm gap|."""
        count = len(self.tasks)
        cosines = self.cosines()
        logs = np.log(np.clip(self.norms(), 1e-30, None))
        signals = {}
        for index, task in enumerate(self.tasks):
            others = [cosines[index, s] for s in range(count) if s != index]
            kept = self.kept[index]
            signals[task] = {
                "cosine": float(np.mean(others)) if others else 1.0,
                "sign_conflict": self.lost[index] / kept if kept else 0.0,
                "norm_spread": float(abs(logs[index] - logs.mean())),
            }
        return signals


def _group_sums(group: TensorGroup, thresholds: torch.Tensor) -> torch.Tensor:
    """One tensor's (or row slice's) contribution to :class:`PoolStatistics`."""
    vectors = torch.stack([v.reshape(-1).double() for v in group.task_vectors])
    gram = vectors @ vectors.T
    kept = (vectors.abs() >= thresholds.view(-1, 1)) & (vectors != 0)
    trimmed = vectors * kept
    elected = torch.sign(trimmed.sum(dim=0))
    lost = (kept & (torch.sign(trimmed) * elected < 0)).sum(dim=1)
    positive = (trimmed > 0).any(dim=0)
    negative = (trimmed < 0).any(dim=0)
    return torch.cat(
        [
            gram.reshape(-1),
            kept.sum(dim=1).double(),
            lost.double(),
            (positive & negative).sum().double().view(1),
            (positive | negative).sum().double().view(1),
        ]
    )


def pool_statistics(
    pool: ExpertPool, density: float = DENSITY, *, progress: bool = True
) -> PoolStatistics:
    """Task-vector Gram matrix and TIES sign-election counts of ``pool`` (streamed)."""
    from harness.merging.task_vectors import magnitude_thresholds, stream_sums

    tasks = pool.tasks
    found = magnitude_thresholds(pool, density, progress=progress)
    thresholds = torch.tensor([found[t] for t in tasks], dtype=torch.float64)
    count = len(tasks)
    sums = stream_sums(
        pool,
        lambda group: _group_sums(group, thresholds.to(group.base.device)),
        progress=progress,
        desc="merge-ability τ stats",
        rowwise=True,
    ).numpy()
    gram = sums[: count * count].reshape(count, count)
    rest = sums[count * count :]
    return PoolStatistics(
        tasks=list(tasks),
        gram=gram.tolist(),
        kept=rest[:count].tolist(),
        lost=rest[count : 2 * count].tolist(),
        conflicted=float(rest[2 * count]),
        touched=float(rest[2 * count + 1]),
        density=density,
    )


# ---------------------------------------------------------------- points and scores
@dataclass
class MergePoint:
    """One merge (record level, ``task`` None) or one task of a merge, with its signals."""

    run_id: str
    method: str
    hyperparameters: dict[str, Any]
    task: str | None
    accuracy: float
    signals: dict[str, float] = field(default_factory=dict)


def correlation(signal: Sequence[float], accuracy: Sequence[float]) -> dict[str, Any]:
    """τ_w and Pearson r of an (oriented) signal against accuracy over points.

    A signal constant over the points ranks nothing: τ_w and r are None and ``constant``
    says why (the pool signals at the record level of one suite).
    """
    x = np.asarray(signal, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    result: dict[str, Any] = {"n": len(x), "tau_w": None, "pearson": None, "constant": False}
    if len(x) < 2:
        return result
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        result["constant"] = True
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        result["tau_w"] = float(stats.weightedtau(x, y).statistic)
        result["pearson"] = float(stats.pearsonr(x, y).statistic)
    return result


def score_points(
    points: Sequence[MergePoint], signals: Sequence[str], orientation: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """Per signal: its correlation with accuracy over the points that have it."""
    scores = {}
    for name in signals:
        having = [p for p in points if name in p.signals]
        sign = orientation.get(name, 1)
        scores[name] = {
            **correlation([sign * p.signals[name] for p in having], [p.accuracy for p in having]),
            "orientation": sign,
        }
    return scores


# ---------------------------------------------------------------- records
def is_merge_record(record: Mapping[str, Any]) -> bool:
    """A merging method's record (baselines, estimators, routers and ensembles are not)."""
    method = record.get("method", {})
    return method.get("family") == "merging" and method.get("name") not in NOT_MERGES


def record_accuracy(record: Mapping[str, Any], task: str | None) -> float:
    """Normalised accuracy (merged / the task's expert, percent) where recorded, else the
    raw metric: what survives merging, not how hard the task is."""
    if task is None:
        value = record.get("normalized_average")
        return float(record["average"] if value is None else value)
    entry = record["tasks"][task]
    value = entry.get("normalized")
    return float(entry["metric"] if value is None else value)


def merge_records(
    records: Sequence[Mapping[str, Any]], suite: str | None = None
) -> dict[str, list[Mapping[str, Any]]]:
    """Merge records grouped by suite name (only ``suite`` if given), in run-id order."""
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r["run_id"]):
        if is_merge_record(record) and (suite is None or record["suite"]["name"] == suite):
            grouped[record["suite"]["name"]].append(record)
    return dict(grouped)


# ---------------------------------------------------------------- the estimator signal
def _features_key(record: Mapping[str, Any], examples: int) -> str:
    return content_key(
        "mergeability-features",
        VERSION,
        record["suite"]["checkpoint_set"],
        record["suite"].get("options", {}),
        record["suite"]["tasks"],
        record["method"]["name"],
        record["hyperparameters"],
        record.get("seed", 0),
        examples,
    )


def merged_features(
    record: Mapping[str, Any], suite: Any, examples: int, device: torch.device, progress: bool
) -> Path:
    """The record's merge rebuilt (method, hyperparameters, seed) and its features on each
    task's first ``examples`` training inputs, cached: ``<task>.safetensors`` per task."""
    from harness.method import MethodContext
    from harness.registry import METHODS
    from harness.run.runner import seed_everything

    def build(directory: Path) -> None:
        seed = int(record.get("seed", 0))
        entry = METHODS.get(record["method"]["name"])
        context = MethodContext(suite, suite.pool(), device, seed=seed, progress=progress)
        seed_everything(seed)
        solution = entry.obj(context, **record["hyperparameters"])
        for task in suite.tasks:
            model = solution.model_for(task, context).eval()
            features, labels = [], []
            with torch.no_grad():
                for inputs, batch_labels in context.labeled_batches(
                    task, "train", batch_size=64, limit=examples
                ):
                    features.append(model(inputs.to(device)).float().cpu())
                    labels.append(batch_labels.cpu())
            tensors = {
                "features": torch.cat(features).contiguous(),
                "labels": torch.cat(labels).long().contiguous(),
            }
            from safetensors.torch import save_file

            with atomic_path(directory / f"{task}.safetensors") as path:
                save_file(tensors, str(path))
            del model

    return cached_directory(_features_key(record, examples), build, namespace=KIND)


def estimator_score(name: str) -> Any:
    """The scoring function of a registered feature-based transferability estimator."""
    from harness.registry import METHODS

    entry = METHODS.get(name)
    uses = getattr(entry.obj, "uses", None)
    if entry.family != "transferability" or uses is None:
        raise HarnessError(
            f"--estimator {name!r} is not a transferability estimator; pick one of "
            f"{', '.join(feature_estimators())}"
        )
    if uses != "features":
        raise HarnessError(
            f"--estimator {name!r} reads {uses.replace('_', ' ')}, which a merged model does "
            f"not have; pick a feature-based one: {', '.join(feature_estimators())}"
        )
    return entry.obj.score


def feature_estimators() -> list[str]:
    from harness.registry import METHODS

    return sorted(
        name
        for name in METHODS.names()
        if METHODS.get(name).family == "transferability"
        and getattr(METHODS.get(name).obj, "uses", None) == "features"
    )


def estimator_values(
    directory: Path, tasks: Sequence[str], name: str, seed: int
) -> dict[str, float]:
    """The estimator on each task's cached merged features (float64, one thread)."""
    from threadpoolctl import threadpool_limits

    from harness.method import hash_seed
    from harness.transferability.inputs import TargetInputs

    score = estimator_score(name)
    values = {}
    with threadpool_limits(1):
        for task in tasks:
            tensors = load_file(str(directory / f"{task}.safetensors"))
            inputs = TargetInputs(tensors["features"].double().numpy(), tensors["labels"].numpy())
            values[task] = float(score(inputs, seed=hash_seed(seed, task)))
    return values


# ---------------------------------------------------------------- one suite
@dataclass
class SuiteMergeability:
    """A suite's points and each signal's τ_w / Pearson per level (what is written)."""

    suite: str
    checkpoint_set: str
    estimator: str | None
    examples: int
    density: float
    points: dict[str, list[MergePoint]]
    scores: dict[str, dict[str, dict[str, Any]]]
    skipped: list[str]
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def signals(self) -> list[str]:
        return [*POOL_SIGNALS, *([self.estimator] if self.estimator else [])]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": VERSION,
            "suite": self.suite,
            "checkpoint_set": self.checkpoint_set,
            "estimator": self.estimator,
            "examples": self.examples,
            "density": self.density,
            "target": "normalized accuracy (merged / the task's expert, %) where recorded",
            "signals": self.signals,
            "created": self.created,
            "scores": self.scores,
            "skipped": self.skipped,
            "points": {level: [asdict(p) for p in ps] for level, ps in self.points.items()},
        }


def _load_suite(
    record: Mapping[str, Any], device: torch.device, progress: bool, mirror: Path | None
) -> Any:
    from harness.cache import cache_dir
    from harness.registry import SUITES
    from harness.suite import SuiteContext

    name = record["suite"]["name"]
    entry = SUITES.get(name)
    options = entry.resolve_params(record["suite"].get("options", {}))
    suite = entry.obj(
        SuiteContext(
            mirror=mirror, cache_dir=cache_dir(), device=device, progress=progress, options=options
        )
    )
    if list(record["suite"]["tasks"]) != list(suite.tasks):
        suite.select_tasks(list(record["suite"]["tasks"]))
    suite.prepare()
    return suite


def _pool_statistics_cached(suite: Any, density: float, progress: bool) -> PoolStatistics:
    key = content_key("mergeability-pool", VERSION, suite.checkpoint_set, suite.tasks, density)

    def build(directory: Path) -> None:
        stats_ = pool_statistics(suite.pool(), density, progress=progress)
        write_json_atomic(directory / "pool.json", asdict(stats_))

    directory = cached_directory(key, build, namespace=KIND)
    return PoolStatistics(**json.loads((directory / "pool.json").read_text()))


def suite_mergeability(
    name: str,
    records: Sequence[Mapping[str, Any]],
    *,
    estimator: str | None = "logme",
    examples: int = EXAMPLES,
    density: float = DENSITY,
    device: torch.device | None = None,
    mirror: Path | None = None,
    progress: bool = True,
) -> SuiteMergeability:
    """Points and scores of one suite's merge records against the suite as built now.

    Records of another build of the suite (another ``checkpoint_set``: their pool is not
    the one measured here) are skipped and listed.
    """
    device = device or torch.device("cpu")
    if estimator is not None:
        estimator_score(estimator)  # refuse a bad name before any work
    suites: dict[tuple[str, ...], Any] = {}
    points: dict[str, list[MergePoint]] = {level: [] for level in LEVELS}
    skipped: list[str] = []
    checkpoint_set = ""
    for record in progress_bar(list(records), desc=f"merge-ability {name}", enabled=progress):
        tasks = tuple(record["suite"]["tasks"])
        if tasks not in suites:
            suites[tasks] = _load_suite(record, device, progress, mirror)
        suite = suites[tasks]
        checkpoint_set = suite.checkpoint_set
        if record["suite"]["checkpoint_set"] != suite.checkpoint_set:
            skipped.append(
                f"{record['run_id']}: made on {record['suite']['checkpoint_set']}, "
                f"not this build ({suite.checkpoint_set})"
            )
            continue
        pool = _pool_statistics_cached(suite, density, progress)
        per_task = pool.task_signals()
        estimated: dict[str, float] = {}
        if estimator is not None:
            directory = merged_features(record, suite, examples, device, progress)
            estimated = estimator_values(directory, tasks, estimator, int(record.get("seed", 0)))
        common = {
            "run_id": record["run_id"],
            "method": record["method"]["name"],
            "hyperparameters": dict(record["hyperparameters"]),
        }
        record_signals = pool.record_signals()
        if estimated:
            record_signals[estimator] = float(np.mean(list(estimated.values())))
        points["record"].append(
            MergePoint(
                **common, task=None, accuracy=record_accuracy(record, None), signals=record_signals
            )
        )
        for task in tasks:
            signals = dict(per_task[task])
            if estimated:
                signals[estimator] = estimated[task]
            points["task"].append(
                MergePoint(
                    **common, task=task, accuracy=record_accuracy(record, task), signals=signals
                )
            )
    for line in skipped:
        note(f"merge-ability: skipped {line}")
    names = [*POOL_SIGNALS, *([estimator] if estimator else [])]
    scores = {level: score_points(points[level], names, ORIENTATION) for level in LEVELS}
    return SuiteMergeability(
        name, checkpoint_set, estimator, examples, density, points, scores, skipped
    )


def write_result(result: SuiteMergeability, out: Path) -> Path:
    """``out/<suite>.json``, atomically (one file per suite, replaced on a rerun)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', result.suite)}.json"
    write_json_atomic(path, result.to_json())
    return path


def format_number(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.3f}"
