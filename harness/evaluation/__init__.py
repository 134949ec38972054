"""Evaluation shared by suites: the classification loop, the fast tensor-store path,
zero-shot heads."""
