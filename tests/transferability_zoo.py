"""A zoo suite of generated features: sources that separate the classes more or less well.

Each source's features are class centres scaled by its ``strength`` plus noise, its
source head is a fixed random projection of them, and its ground-truth fine-tuned
accuracy rises with the strength (with one swap, so the ranking is not trivially the
name order). It drives the real ZooSuite contract (ranking metrics, runner dispatch,
records) in milliseconds. The test split's labels are kept behind a guard that counts
every read, so a test can assert that no estimator touched them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.suite import Artifact
from harness.transferability.inputs import TargetInputs
from harness.transferability.zoo import GroundTruth, ZooSuite

STRENGTHS = {"weak": 0.1, "fair": 0.5, "good": 1.0, "great": 2.0}
ACCURACY = {"weak": 40.0, "fair": 62.0, "good": 60.0, "great": 80.0}  # fair/good swapped
CLASSES = {"alpha": 3, "beta": 4}
TRAIN = 90


class GuardedLabels:
    """Test labels that count how often they are read."""

    reads = 0

    def __init__(self, labels: np.ndarray) -> None:
        self._labels = labels

    def get(self) -> np.ndarray:
        GuardedLabels.reads += 1
        return self._labels


def _inputs(source: str, target: str) -> TargetInputs:
    rng = np.random.default_rng(sum(map(ord, source + target)))
    classes = CLASSES[target]
    labels = np.arange(TRAIN) % classes
    centres = np.random.default_rng(len(target)).normal(size=(classes, 6))
    features = STRENGTHS[source] * 3 * centres[labels] + rng.normal(size=(TRAIN, 6))
    logits = features @ np.random.default_rng(7).normal(size=(6, 5))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return TargetInputs(features, labels, probs, _facts(source))


def _facts(source: str) -> dict[str, float]:
    return {"accuracy": 50.0 + 10 * STRENGTHS[source], "parameters": 1000.0}


class TinyZoo(ZooSuite):
    """Two targets, four sources each; see the module docstring."""

    tasks = list(CLASSES)

    def prepare(self) -> None:
        self.test_labels = {t: GuardedLabels(np.arange(30) % CLASSES[t]) for t in CLASSES}

    def sources(self, target: str) -> list[str]:
        return list(STRENGTHS)

    def target_inputs(self, source: str, target: str) -> TargetInputs:
        return _inputs(source, target)

    def source_facts(self, source: str, target: str) -> dict[str, float]:
        return _facts(source)

    def ground_truth(self, target: str) -> Mapping[str, GroundTruth]:
        return {
            s: GroundTruth(validation=a + 1.0, test=a, config={"lr": 1e-3})
            for s, a in ACCURACY.items()
        }

    def artifacts(self) -> list[Artifact]:
        return [Artifact("zoo", "tiny/zoo", "built")]
