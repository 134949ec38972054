"""Distillation mechanics: train ONE student from many experts, under a recorded budget.

Merging builds one model from the experts without training; distillation builds one with
training. The pieces every distillation method shares live here, once:

- :mod:`harness.distillation.budget`: the compute budget (steps, inputs per task per
  step, train examples per task) and the seeded plan of which train batch each step uses;
- :mod:`harness.distillation.teachers`: the teachers' outputs, computed once per planned
  train batch (expert by expert, one teacher in memory at a time) and reused every epoch;
- :mod:`harness.distillation.losses`: the distillation losses (temperature-scaled KL with
  T², feature MSE, FuseLLM's token-level fusion);
- :mod:`harness.distillation.student`: the student's initialisation (the pretrained model
  or a registered merge: "merge then distil");
- :mod:`harness.distillation.loop`: the training loop (AdamW, warmup + cosine schedule,
  seeded, progress bar) that returns a :class:`harness.method.Solution` with the compute
  it spent (seconds, examples seen) in ``info["distillation"]``.

Test labels are never read: students train on the train split's inputs (and its labels
only where a method mixes in a hard-label term).
"""
