"""Shared mechanics of merging methods: streaming merges, task-vector statistics,
sparsification, spectral helpers, lazy per-task states, data statistics, learned coefficients.

Method files import what they need from here; nothing in this package registers a method."""
