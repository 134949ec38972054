"""The suite contract: a suite whose scoring is not "backbone + frozen head → accuracy"
plugs into the same loop, and methods that need what a suite lacks are refused up front.

Every data-free method runs through the real runner on a regression suite scored by
Spearman correlation (tests/regression_suite.py), as a text-to-text or generation suite
would be; methods that read labelled batches or heads are refused in one line before the
suite prepares anything.
"""

from __future__ import annotations

import math
import sys

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.method import MethodContext, Solution
from harness.registry import METHODS, SUITES, register_method
from harness.run.records import read_record, validation_errors
from harness.run.runner import RunSpec, run
from harness.suite import CAPABILITIES, ClassificationSuite, Suite
from tests.regression_suite import RegressionSuite

NAMES = METHODS.names()
DATA_FREE = [name for name in NAMES if not METHODS.get(name).needs]
NEEDS_DATA = [name for name in NAMES if METHODS.get(name).needs]


def _spec(name: str, tmp_path, **extra) -> RunSpec:
    entry = METHODS.get(name)
    return RunSpec(
        method=name,
        suite="reg3",
        overrides=dict(entry.smoke),
        only=RegressionSuite.tasks[: entry.experts] if entry.experts else None,
        select="defaults",
        device="cpu",
        results_dir=tmp_path,
        progress=False,
        **extra,
    )


def test_the_vision_and_minitext_suites_are_classification_suites():
    assert {"mini8", "minitext"} <= set(SUITES.names())
    for name in SUITES.names():
        cls = SUITES.get(name).obj
        assert issubclass(cls, Suite)
        if name in ("mini8", "minitext", "vit8", "vit14", "vit20"):
            assert issubclass(cls, ClassificationSuite)
            assert cls.provides == frozenset({"batches", "heads", "features"})
            assert cls.provides <= frozenset(CAPABILITIES)


def test_data_free_and_data_based_methods_are_both_present():
    """Guards the parametrisations below against silently testing nothing."""
    assert {"weight_average", "ties", "task_arithmetic", "individual"} <= set(DATA_FREE)
    assert {"fisher", "regmean", "adamerging"} <= set(NEEDS_DATA)


@pytest.mark.parametrize("name", DATA_FREE)
def test_data_free_method_runs_on_a_non_classification_suite(name, regression_suite, tmp_path):
    record, path = run(_spec(name, tmp_path))
    assert validation_errors(read_record(path)) == []
    assert record["suite"]["metric"] == "spearman"
    for task, entry in record["tasks"].items():
        assert math.isfinite(entry["metric"]), f"{name}/{task}"
        assert entry["metrics"]["n"] == 64 and entry["n"] == 64
        assert entry["individual"] is not None


def test_experts_beat_the_base_on_the_regression_suite(regression_suite, tmp_path):
    """The suite is a real benchmark: fine-tuning moved each expert towards its task."""
    experts, _ = run(_spec("individual", tmp_path))
    base, _ = run(_spec("pretrained", tmp_path))
    for task in RegressionSuite.tasks:
        assert experts["tasks"][task]["metric"] > base["tasks"][task]["metric"] + 20
    assert experts["tasks"]["sum"]["metric"] > 90


@pytest.mark.parametrize("name", NEEDS_DATA)
def test_method_needing_data_is_refused_before_anything_loads(name, regression_suite, tmp_path):
    builds = RegressionSuite.builds
    with pytest.raises(HarnessError, match=f"{name} cannot run on reg3") as error:
        run(_spec(name, tmp_path))
    assert "\n" not in str(error.value)
    assert RegressionSuite.builds == builds, "the suite was prepared before the refusal"
    assert not any(tmp_path.iterdir()), "nothing may be written"


def test_refusal_through_the_cli_is_one_line_exit_2(
    regression_suite, tmp_path, monkeypatch, capsys
):
    results = tmp_path / "results"
    args = ["harness", "eval", "--method", "fisher", "--tasks", "reg3", "--results", str(results)]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and "fisher cannot run on reg3" in err
    assert not results.exists()


def test_undeclared_need_is_a_one_line_error_naming_the_fix(
    regression_suite, tmp_path, monkeypatch
):
    """A method that reads heads without declaring ``needs`` fails clearly, not deep inside."""
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))

    @register_method("uses_heads_quietly", family="merging", reference="https://example.org")
    def uses_heads_quietly(context: MethodContext) -> Solution:
        context.head(context.tasks[0])
        return Solution(state=context.pool.base_state())

    with pytest.raises(HarnessError, match=r"declare needs=\('heads',\)") as error:
        run(_spec("uses_heads_quietly", tmp_path))
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("*.json"))


def test_unknown_need_is_refused_at_registration():
    with pytest.raises(ValueError, match="needs must be among"):
        register_method("x", family="merging", reference="https://example.org", needs=("gpu",))
