"""Merging: one model, or lazily built per-task states, from the experts' weights
(``family="merging"``).

Contract: ``fn(context, **hyperparameters) -> Solution`` with
- ``state``: one merged state whose names, shapes and dtypes are the base's, or
- ``task_states``: task -> state, built on demand, with what is stored beyond one model
  counted in ``extra_parameters`` (32-bit equivalents; masks 1 bit an entry).

Data-free methods read only ``context.pool``, tensor by tensor (``harness.merging.stream``),
so any suite can run them. Data-based methods (Fisher, RegMean, AdaMerging, soups, ...)
also read ``context.labeled_batches`` / ``unlabeled_batches`` / ``head``, which only a
suite that provides them answers; they declare it with ``register_method(needs=...)``
and are refused up front on other suites. Shared mechanics (streaming, task-vector
statistics, sparsification, SVD helpers, Gram and Fisher statistics, learned coefficients)
live in ``harness.merging``; a method file holds only its paper's rule.
"""
