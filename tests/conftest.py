"""Shared fixtures: an isolated cache, and the tiny suite registered for one test."""

from __future__ import annotations

import pytest
import torch

from harness.method import MethodContext
from harness.registry import SUITES, Entry
from harness.suite import SuiteContext
from tests.regression_suite import RegressionSuite
from tests.tiny_suite import TinySuite


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache so tests never read a user's cache."""
    root = tmp_path_factory.getbasetemp() / "harness-cache"
    monkeypatch.setenv("HARNESS_CACHE", str(root))
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    return root


def register_for_test(monkeypatch: pytest.MonkeyPatch, name: str, cls: type) -> str:
    """Register a suite class under ``name`` for the duration of one test."""
    SUITES.discover()
    entry = Entry(name=name, kind="suite", obj=cls, family="suite", module=cls.__module__)
    monkeypatch.setattr(cls, "name", name)
    monkeypatch.setitem(SUITES._entries, name, entry)
    return name


@pytest.fixture
def tiny_suite_name(monkeypatch):
    """The tiny classification suite, registered as ``tiny3`` for one test."""
    return register_for_test(monkeypatch, "tiny3", TinySuite)


@pytest.fixture
def regression_suite(monkeypatch):
    """The regression suite (no heads, Spearman), registered as ``reg3`` for one test."""
    return register_for_test(monkeypatch, "reg3", RegressionSuite)


@pytest.fixture
def tiny_context() -> MethodContext:
    """What a method sees when run on the tiny suite (CPU, seed 0, no progress bars)."""
    TinySuite.name = "tiny3"
    suite = TinySuite(SuiteContext(progress=False))
    suite.prepare()
    return MethodContext(suite, suite.pool(), torch.device("cpu"), seed=0, progress=False)
