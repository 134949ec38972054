"""Transferability suites: a model zoo, targets and fine-tuned ground truth (``ZooSuite``)."""
