"""Baselines: the reference points of every table (``family="baseline"``).

Contract: ``fn(context, **hyperparameters) -> Solution`` like any method, but a baseline
combines nothing: it returns the pretrained model (``state``), each task's own expert
(``task_states``), or all experts at once (``task_modules``). ``individual`` is also the
denominator of every record's normalised accuracy, so it must score each expert exactly
as the suite scores merged models.
"""
