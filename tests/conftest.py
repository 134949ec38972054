"""Shared fixtures: an isolated cache, and the tiny suite registered for one test."""

from __future__ import annotations

import pytest
import torch

from harness.method import MethodContext
from harness.registry import SUITES, Entry
from harness.suite import SuiteContext
from tests.tiny_suite import TinySuite


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache so tests never read a user's cache."""
    root = tmp_path_factory.getbasetemp() / "harness-cache"
    monkeypatch.setenv("HARNESS_CACHE", str(root))
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    return root


@pytest.fixture
def tiny_suite_name(monkeypatch):
    """Register the tiny suite as ``tiny3`` for the duration of one test."""
    SUITES.discover()
    entry = Entry(name="tiny3", kind="suite", obj=TinySuite, family="suite", module=__name__)
    TinySuite.name = "tiny3"
    monkeypatch.setitem(SUITES._entries, "tiny3", entry)
    return "tiny3"


@pytest.fixture
def tiny_context() -> MethodContext:
    """What a method sees when run on the tiny suite (CPU, seed 0, no progress bars)."""
    TinySuite.name = "tiny3"
    suite = TinySuite(SuiteContext(progress=False))
    suite.prepare()
    return MethodContext(suite, suite.pool(), torch.device("cpu"), seed=0, progress=False)
