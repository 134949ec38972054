"""The suite contract: a base model, one expert per task, data splits, an evaluator.

A suite is registered with ``@register_suite(name)`` on a subclass of :class:`Suite`.
The runner only talks to this interface, so a vision suite, a GLUE suite and a GSM8K
suite plug into the same loop and the same record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from harness.errors import UnknownNameError
from harness.weights.pool import ExpertPool

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Artifact:
    """The identity of one model or dataset a run used, for the record."""

    role: str  # "base", "expert:<task>", "dataset:<task>", "head:<task>", ...
    id: str  # hub id, or a local name
    source: str  # "hub", "mirror", "built" or "package"
    revision: str | None = None  # hub commit, where known
    sha256: str | None = None  # content hash, for local files

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
    """Base class for suites. Subclasses set ``tasks`` and implement the abstract methods."""

    name: ClassVar[str] = ""
    tasks: list[str] = []
    metric: str = "accuracy"
    published: ClassVar[list[Published]] = []

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
        """The backbone architecture with ``state`` (pool names) loaded, in eval mode."""

    @abstractmethod
    def head(self, task: str) -> torch.nn.Module:
        """The frozen classifier of ``task``: backbone features → logits."""

    @abstractmethod
    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches of a split, in a fixed order."""

    @abstractmethod
    def artifacts(self) -> list[Artifact]:
        """Identities of every model and dataset used, for the record."""

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Score ``model`` (a backbone) on one task; metrics in percent."""
        from harness.evaluation.classification import classification_accuracy

        return classification_accuracy(
            model,
            self.head(task),
            self.batches(task, split, limit=limit),
            device=self.context.device,
            progress=self.context.progress,
            desc=f"{task}/{split}",
        )
