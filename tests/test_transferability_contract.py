"""The estimator contract, as scikit-learn's ``check_estimator``: every registered method
of the ``transferability`` family passes these checks without writing a test.

* registered with a paper link, ``needs=("zoo",)`` and legal defaults;
* same seed, same score; permuting the examples leaves the score unchanged;
* more informative features (or a source head built on them) score higher on a
  generated case (target-blind baselines excepted: they read only source facts or the
  seed);
* run through the runner on a zoo suite it records τ_w per target, and never reads the
  test labels; a zoo without source classifiers refuses a head-reading estimator and
  a non-zoo suite refuses every estimator, each in one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.registry import METHODS
from harness.run.runner import RunSpec, run
from harness.suite import SuiteContext
from harness.transferability.inputs import TargetInputs
from tests.conftest import register_for_test
from tests.transferability_zoo import ACCURACY, GuardedLabels, TinyZoo

NAMES = [entry.name for entry in METHODS.entries() if entry.family == "transferability"]
TARGET_BLIND = {"random_ranking", "source_accuracy", "source_size"}


def _generated(strength: float, seed: int = 0) -> TargetInputs:
    """120 examples of 4 classes: class centres × strength + unit noise, 8 dimensions."""
    rng = np.random.default_rng(seed)
    labels = np.arange(120) % 4
    centres = np.random.default_rng(99).normal(size=(4, 8))
    features = strength * 3 * centres[labels] + rng.normal(size=(120, 8))
    head = np.random.default_rng(5).normal(size=(8, 6))
    logits = features @ head
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return TargetInputs(features, labels, probs, {"accuracy": 70.0, "parameters": 5e6})


def _score(name: str, inputs: TargetInputs, seed: int = 0) -> float:
    entry = METHODS.get(name)
    return float(entry.obj.score(inputs, seed=seed, **entry.defaults))


def test_the_family_is_complete():
    expected = {
        "logme", "leep", "nleep", "nce", "hscore", "shrinkage_hscore", "gbc", "transrate",
        "sfda", "parc", "pactran", "etran", "random_ranking", "source_accuracy",
    }  # fmt: skip
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_registration(name):
    entry = METHODS.get(name)
    assert entry.reference.startswith("https://") and entry.description
    assert entry.needs == ("zoo",)
    assert entry.obj.uses in ("features", "source_probs", "source_facts")
    for key, param in entry.params.items():
        assert param.check(key, param.default) == param.default


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_score(name):
    inputs = _generated(0.5)
    first = _score(name, inputs, seed=3)
    assert np.isfinite(first)
    assert _score(name, inputs, seed=3) == first


@pytest.mark.parametrize("name", NAMES)
def test_permuting_examples_leaves_the_score_unchanged(name):
    inputs = _generated(0.5)
    order = np.random.default_rng(1).permutation(len(inputs.labels))
    assert _score(name, inputs.permuted(order)) == pytest.approx(
        _score(name, inputs), rel=1e-6, abs=1e-8
    )


@pytest.mark.parametrize("name", [n for n in NAMES if n not in TARGET_BLIND])
def test_more_informative_features_score_higher(name):
    weak, strong = _generated(0.1), _generated(1.0)
    assert _score(name, strong) > _score(name, weak)


def _zoo_spec(name: str, suite: str, tmp_path) -> RunSpec:
    return RunSpec(
        method=name, suite=suite, select="defaults", device="cpu",
        results_dir=tmp_path, progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_a_zoo_records_tau_and_never_reads_test_labels(name, monkeypatch, tmp_path):
    suite = register_for_test(monkeypatch, "tinyzoo", TinyZoo)
    GuardedLabels.reads = 0
    record, path = run(_zoo_spec(name, suite, tmp_path))
    assert GuardedLabels.reads == 0
    assert json.loads(path.read_text())["run_id"] == record["run_id"]
    assert record["suite"]["metric"] == "tau_w" and record["normalized_average"] is None
    for target in TinyZoo.tasks:
        metrics = record["tasks"][target]["metrics"]
        assert -1.0 <= metrics["tau_w"] <= 1.0
        assert 0.0 <= metrics["top1_regret"] <= max(ACCURACY.values()) - min(ACCURACY.values())
        assert metrics["n"] == len(ACCURACY) and metrics["estimator_s"] >= 0
        assert set(record["method_info"]["scores"][target]) == set(ACCURACY)
    assert record["average"] == pytest.approx(
        np.mean([record["tasks"][t]["metric"] for t in TinyZoo.tasks])
    )


def test_feature_estimators_rank_the_tiny_zoo_well(monkeypatch, tmp_path):
    """On the generated zoo, a feature estimator finds the strongest source (regret 0)."""
    suite = register_for_test(monkeypatch, "tinyzoo", TinyZoo)
    record, _ = run(_zoo_spec("logme", suite, tmp_path))
    assert record["average"] > 0.5
    assert all(record["tasks"][t]["metrics"]["top1_regret"] == 0.0 for t in TinyZoo.tasks)


def test_head_estimators_are_refused_without_source_classifiers(monkeypatch, tmp_path):
    class HeadlessZoo(TinyZoo):
        has_source_classifiers = False

    suite = register_for_test(monkeypatch, "headlesszoo", HeadlessZoo)
    with pytest.raises(HarnessError, match="no classifier") as error:
        run(_zoo_spec("leep", suite, tmp_path))
    assert "\n" not in str(error.value)


def test_estimators_are_refused_on_a_suite_that_is_not_a_zoo(tiny_suite_name, tmp_path):
    with pytest.raises(HarnessError, match="needs a model zoo") as error:
        run(_zoo_spec("logme", tiny_suite_name, tmp_path))
    assert "\n" not in str(error.value)


def test_a_model_is_refused_by_a_zoo(tmp_path):
    """A zoo scores rankings: a merging method's model is refused in one line."""
    zoo = TinyZoo(SuiteContext(progress=False, cache_dir=tmp_path))
    zoo.prepare()
    with pytest.raises(HarnessError, match="transferability estimator") as error:
        zoo.evaluate(torch.nn.Identity(), "alpha")
    assert "\n" not in str(error.value)


def test_merging_methods_are_refused_on_a_zoo_up_front(monkeypatch, tmp_path):
    suite = register_for_test(monkeypatch, "tinyzoo", TinyZoo)
    with pytest.raises(HarnessError, match="only transferability methods") as error:
        run(_zoo_spec("ties", suite, tmp_path))
    assert "\n" not in str(error.value)
