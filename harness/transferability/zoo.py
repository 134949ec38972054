"""The zoo-suite contract: sources, targets, cached inputs and fine-tuned ground truth.

A zoo suite's tasks are its *targets*. For each target it names the sources ranked on
it (a target's own expert may be left out, which is the fair choice), gives each
(source, target) pair's :class:`~harness.transferability.inputs.TargetInputs` (training
split only, extracted once and cached by the suite) and the ground truth: each source's
fine-tuned accuracy on that target, selected on validation and scored on test.

What the runner scores is a ranking, not a model: a transferability method returns one
:class:`ZooScores` per target, and ``evaluate`` turns it into τ_w, Pearson and top-1
regret against the ground truth (``harness.transferability.ranking``). ``split`` picks
which ground truth: ``test`` (what is reported) or ``validation`` (selection of an
estimator's own hyperparameters, where it has a grid).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.errors import HarnessError
from harness.suite import Suite
from harness.transferability.inputs import TargetInputs
from harness.transferability.ranking import ranking_metrics


@dataclass(frozen=True)
class GroundTruth:
    """One (source, target) pair's fine-tuned accuracy (percent) and how it was chosen."""

    validation: float
    test: float
    config: Mapping[str, float]  # the selected grid point (lr, weight decay, ...)


class ZooScores(torch.nn.Module):
    """An estimator's scores of every source for one target: what a zoo suite evaluates."""

    def __init__(self, scores: Mapping[str, float], seconds: float) -> None:
        super().__init__()
        self.scores = dict(scores)
        self.seconds = float(seconds)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - not a model
        raise HarnessError("ZooScores holds a ranking; score it with the zoo suite's evaluate")


class ZooWeights:
    """A zoo suite's stand-in for an expert pool: estimators read features, not weights.

    The runner opens a suite's pool before running a method; a zoo's sources are many
    architectures (or many towers) that share no base model, so there is no streaming
    pool to offer, and anything that asks for weights gets a one-line error instead.
    """

    def __init__(self, suite: str, tasks: list[str]) -> None:
        self.suite = suite
        self.tasks = list(tasks)

    def __getattr__(self, name: str) -> object:
        raise HarnessError(
            f"{self.suite!r} is a model zoo with no expert pool; only transferability "
            "estimators run on it (they read cached features, not weights)"
        )


class ZooSuite(Suite):
    """Base class of transferability suites (``zoo-mini8``, ``zoo-imagenet``)."""

    metric = "tau_w"
    provides: ClassVar[frozenset[str]] = frozenset({"zoo"})
    #: Only estimators run on a zoo: a merging method's model has nothing to be scored by.
    method_families: ClassVar[tuple[str, ...] | None] = ("transferability",)
    #: Whether every source has a classifier over source classes (LEEP, NCE, PACTran).
    has_source_classifiers: ClassVar[bool] = True
    splits: ClassVar[Mapping[str, str]] = {
        "train": "the target's training inputs: what estimators see",
        "validation": "selects each (source, target)'s fine-tuning grid point",
        "test": "the selected fine-tuned model's accuracy: the ground truth ranked against",
    }

    @abstractmethod
    def sources(self, target: str) -> list[str]:
        """The zoo ranked on ``target``, in a fixed order."""

    @abstractmethod
    def target_inputs(self, source: str, target: str) -> TargetInputs:
        """What an estimator sees for one pair: training split only, cached."""

    @abstractmethod
    def source_facts(self, source: str, target: str) -> Mapping[str, float]:
        """What is known of the source without the target's data (``accuracy``: its own
        upstream accuracy in percent; ``parameters``): the target-blind baselines' input."""

    @abstractmethod
    def ground_truth(self, target: str) -> Mapping[str, GroundTruth]:
        """Each source's fine-tuned accuracy on ``target``."""

    def reference_scores(self) -> Mapping[str, float] | None:
        """No expert reference: a ranking's τ_w is not normalised by anything."""
        return {}

    def pool(self) -> ZooWeights:  # type: ignore[override]
        return ZooWeights(self.name, self.tasks)

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        raise HarnessError(
            f"{self.name!r} ranks a model zoo; only transferability estimators run on it "
            "(`harness list methods` shows the family)"
        )

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        if not isinstance(model, ZooScores):
            raise HarnessError(
                f"{self.name!r} scores rankings of its zoo; run a transferability estimator "
                "(family transferability) on it, not a merging method"
            )
        if split not in ("validation", "test"):
            raise HarnessError(f"{self.name!r} has ground truth for validation and test only")
        truth = {source: getattr(entry, split) for source, entry in self.ground_truth(task).items()}
        metrics = ranking_metrics(model.scores, truth)
        return {**metrics, "n": len(truth), "estimator_s": model.seconds}
