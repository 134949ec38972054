"""The suite contract: a base model, one expert per task, and a scorer per task.

A suite is registered with ``@register_suite(name)`` on a subclass of :class:`Suite`. The
runner only talks to :class:`Suite`: it builds models from the pool's states and asks
``evaluate(model, task, split)`` for metrics, so *how* a task is scored (a frozen head and
accuracy, generation scored by lm-eval, a judge) is the suite's business alone.

What a suite offers methods beyond its weights is declared in ``provides``: a method that
``needs`` something a suite lacks is refused in one line before anything loads.

- :class:`Suite`: the minimal contract (pool, model builder, scorer, identities).
- :class:`ClassificationSuite`: backbone + frozen head per task, top-1 accuracy; provides
  labelled batches, heads and a feature backbone, which data-based merging methods use
  (Fisher, RegMean, AdaMerging, soups, routers). A generation suite may provide batches
  alone (minimath's fine-tuning sequences): RegMean's Gram matrices need only the layers'
  inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from harness.errors import HarnessError, UnknownNameError
from harness.weights.pool import ExpertPool

SPLITS = ("train", "validation", "test")

#: What a suite may offer methods beyond its weights (``Suite.provides``, ``needs=``):
#: "batches": (inputs, labels) of train/validation and unlabelled test inputs;
#: "heads": one frozen module per task mapping backbone outputs to class logits;
#: "roles": which expert plays which part in a composition (``Suite.roles``: the task
#: expert and the language expert of cross-lingual layer swapping);
#: "outcomes": a table of candidate models' per-query scores and costs that routers fit
#: on (harness/routing/suite.py);
#: "zoo": a transferability suite (``harness.transferability.zoo.ZooSuite``): sources per
#: target, cached estimator inputs and fine-tuned ground truth.
CAPABILITIES = {
    "batches": "labelled train/validation batches and unlabelled test inputs",
    "heads": "a frozen classification head per task",
    "roles": "expert roles (which expert is the task expert and which the language expert)",
    "features": "a backbone that maps a batch to one feature vector per example",
    "lm": "a causal LM whose batches are its fine-tuning sequences (label: the prompt length)",
    "outcomes": "an outcome table (per-query scores and costs of candidate models)",
    "zoo": "a model zoo with per-(source, target) features and fine-tuned ground truth",
}


def provides_need(provides: frozenset[str], need: str) -> bool:
    """Whether a suite's ``provides`` meets one entry of a method's ``needs``; an entry
    ``"heads|lm"`` is met by either (Fisher: a classification head or a causal LM)."""
    return any(alternative in provides for alternative in need.split("|"))


@dataclass(frozen=True)
class Artifact:
    """The identity of one model or dataset a run used, for the record."""

    role: str  # "base", "expert:<task>", "dataset:<task>", "head:<task>", ...
    id: str  # hub id, or a local name
    source: str  # "hub", "mirror", "built" or "package"
    revision: str | None = None  # hub commit, where known
    sha256: str | None = None  # content hash, for local files

    @classmethod
    def of(cls, role: str, resolved: Any) -> Artifact:
        """A resolved hub artifact (``harness.weights.hub.ResolvedArtifact``); files without
        a hub revision get a content hash."""
        from harness.weights.snapshot_id import snapshot_sha256

        sha = None if resolved.revision else snapshot_sha256(resolved.path)
        return cls(role, resolved.id, resolved.source, resolved.revision, sha)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "id": self.id,
            "source": self.source,
            "revision": self.revision,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Published:
    """A number from the literature, shown beside measured ones on the leaderboard."""

    method: str  # registered method name
    average: float
    source: str  # URL of the paper (arXiv abstract) or documentation page
    checkpoint_set: str
    per_task: Mapping[str, float] = field(default_factory=dict)
    note: str = ""
    table: str = ""  # where in the source, e.g. "Table 2"; empty when not confirmed


@dataclass
class SuiteContext:
    """Where a suite finds and keeps things."""

    mirror: Path | None = None
    cache_dir: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)


class Suite(ABC):
    """Base class for suites: ``tasks``, a pool, a model builder and ``evaluate``."""

    name: ClassVar[str] = ""
    tasks: list[str] = []
    metric: str = "accuracy"  # the key of evaluate()'s result that tables rank by
    provides: ClassVar[frozenset[str]] = frozenset()  # keys of CAPABILITIES
    published: ClassVar[list[Published]] = []
    #: What each split is, where the names alone would mislead (a scored ``test`` that is
    #: the benchmark's validation split; ``validation`` carved out of train). Recorded in
    #: every result as ``suite.splits``, so a record says where selection happened.
    splits: ClassVar[Mapping[str, str]] = {}
    #: Tasks that no expert was trained on (a cross-lingual target: math in a language
    #: only a language expert knows), each mapped to the experts it is composed from. The
    #: pool holds those experts; a task's individual reference is the best of them on it,
    #: and the ``individual`` baseline scores it with the first (the task-skill expert).
    reference_experts: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: Whether each task is one expert of the pool (mini8, GLUE). False where tasks are
    #: scored capabilities and the experts come from options (crosseval): a method that
    #: needs exactly N experts is then checked on the pool, not on the task count.
    tasks_are_experts: ClassVar[bool] = True
    #: Which pool expert plays which part in a composition (``provides`` "roles"), e.g.
    #: ``{"math": "math", "language": "lang2"}`` for layer swapping.
    roles: ClassVar[Mapping[str, str]] = {}
    #: The method families that can run on this suite (None: any). An outcome-table suite
    #: holds scores, not weights, so only routers run on it; others are refused up front.
    method_families: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, context: SuiteContext) -> None:
        self.context = context

    # ------------------------------------------------------------------ identity
    @property
    def checkpoint_set(self) -> str:
        """Which set of base + expert checkpoints this instance uses (recorded)."""
        return "default"

    def select_tasks(self, tasks: list[str] | None) -> None:
        """Restrict the suite to some of its tasks (``--only a,b``)."""
        if not tasks:
            return
        for task in tasks:
            if task not in self.tasks:
                raise UnknownNameError(
                    f"suite {self.name!r} has no task {task!r}; its tasks: {', '.join(self.tasks)}"
                )
        self.tasks = [task for task in self.tasks if task in tasks]

    # ------------------------------------------------------------------ contract
    @abstractmethod
    def prepare(self) -> None:
        """Fetch or build everything the run needs (models, data, heads), using the cache."""

    @abstractmethod
    def pool(self) -> ExpertPool:
        """The base model and one expert per task, as a streaming pool."""

    @abstractmethod
    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        """The architecture with ``state`` (pool names) loaded, in eval mode: what
        ``evaluate`` scores and what a method's solution returns per task."""

    @abstractmethod
    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Score ``model`` on one task's split: ``{metric: value, ..., "n": examples}``.

        Values are what the tables show (percent for accuracies); ``limit`` caps the
        examples (validation-time selection)."""

    @abstractmethod
    def artifacts(self) -> list[Artifact]:
        """Identities of every model and dataset used, for the record."""

    def evaluation_details(self, task: str) -> Mapping[str, Any]:
        """How ``task``'s last score was computed, where its metric alone does not say
        (lm-eval's version, task version, n-shot, filters, the per-sample log); the runner
        asks right after scoring the test split and records it as ``tasks.<task>.details``."""
        return {}

    def evaluation_summary(self) -> Mapping[str, Any]:
        """What the run's test scores say together, beyond each task's metric (CrossEval's
        weakest-link statistics); the runner asks right after the test split is scored,
        before any expert is scored for reference, and records it as ``suite.summary``."""
        return {}

    def reference_scores(self) -> Mapping[str, float] | None:
        """Each task's individual reference where the suite knows it without scoring pool
        experts (an outcome table: the best single model on the task); None otherwise."""
        return None

    # ------------------------------------------------------------ optional offers
    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches of a split in a fixed order (``provides`` "batches")."""
        raise self.lacks("batches")

    def head(self, task: str) -> torch.nn.Module:
        """The frozen classifier of ``task`` (``provides`` "heads")."""
        raise self.lacks("heads")

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """Which positions of an input batch are real tokens (``[B, L]`` bool), for statistics
        over token positions (RegMean's Gram matrices) that padding must not enter; None
        when every position is real (images, unpadded inputs)."""
        return None

    def lacks(self, capability: str) -> HarnessError:
        """The one-line error for a method asking for something this suite does not offer."""
        return HarnessError(
            f"suite {self.name!r} does not provide {CAPABILITIES[capability]}; a method that "
            f"uses them must declare needs=({capability!r},) so that it is refused up front"
        )


class ClassificationSuite(Suite):
    """Backbone + frozen head per task, top-1 accuracy (mini8, the CLIP suites).

    ``build_model`` returns the backbone (inputs → features); ``head(task)`` maps features
    to the task's logits; every merged backbone is scored with the same heads.
    """

    provides: ClassVar[frozenset[str]] = frozenset({"batches", "heads", "features"})

    @abstractmethod
    def head(self, task: str) -> torch.nn.Module:
        """The frozen classifier of ``task``: backbone features → logits."""

    @abstractmethod
    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches of a split, in a fixed order."""

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Top-1 accuracy (%) of head(model(x)) on one task."""
        from harness.evaluation.classification import classification_accuracy

        return classification_accuracy(
            model,
            self.head(task),
            self.batches(task, split, limit=limit),
            device=self.context.device,
            progress=self.context.progress,
            desc=f"{task}/{split}",
        )
