"""Transferability estimation: rank a zoo of source models for a target without fine-tuning.

Shared mechanics of the ``transferability`` family, kept here once:

- :mod:`~harness.transferability.inputs`: what an estimator is given (features on the
  target's training inputs, the training labels, the source head's probabilities, facts
  about the source) and the ``estimator`` decorator that turns a scoring function into a
  registered method the runner can run on a zoo suite;
- :mod:`~harness.transferability.ranking`: how a ranking is scored against ground truth
  (weighted Kendall τ as ``scipy.stats.weightedtau``, Pearson, top-1 regret);
- :mod:`~harness.transferability.zoo`: the zoo-suite contract (sources per target,
  cached features per (source, target), fine-tuned ground truth) that ``harness eval``
  scores an estimator on;
- :mod:`~harness.transferability.finetune`: the ground-truth protocol (full fine-tuning
  over a learning-rate × weight-decay grid, best on validation, scored on test), run pair
  by pair and resumably by ``finetune_pairs`` for any ``FinetunableZoo`` (zoo-mini8's
  build, ``harness transfer finetune``);
- :mod:`~harness.transferability.mergeability`: merge-ability prediction, pre-merge
  signals (task-vector cosine, TIES sign conflict, norm spread, an estimator on the merged
  model's features) scored by τ_w against the merges a results directory recorded
  (``harness transfer mergeability``).
"""
