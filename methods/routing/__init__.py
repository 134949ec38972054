"""Routing: per-input (or per-task) choice among experts or their parts (``family="routing"``).

Contract: ``fn(context, **hyperparameters) -> Solution`` with ``task_modules``: task ->
an ``nn.Module`` that maps the suite's inputs to what the suite scores (for classification
suites, backbone features), deciding per input which experts or expert parts to use. The
router may be trained on train/validation data or unlabeled test inputs, never on test
labels. Everything stored beyond one model (routers, compressed expert parts) is counted
in ``extra_parameters``.
"""
