"""Registered suites, one folder per family (vision, ...); see ``harness.suite``."""
