"""Distillation: one student trained from the experts (``family="distillation"``).

Contract: ``fn(context, **hyperparameters) -> Solution`` with ``state``: ONE backbone for
every task, whose names, shapes and dtypes are the base's, scored by the suite exactly as
a merge is (each task through its own frozen head). The method reads the pool (teachers
and, for "merge then distil", the init merge), the heads, and the suite's *train* split:
its inputs, and its labels only where the method mixes in a hard-label term. Test
labels are never read; the task id is known while training only, never when scoring.

Every method runs the shared loop (:mod:`harness.distillation`) and takes the shared
hyperparameters (:mod:`harness.distillation.params`): the budget (``steps``,
``batch_size`` per task per step, ``examples`` per task) recorded like any other
hyperparameter, AdamW with warmup + cosine, the student's ``init`` (pretrained, or a
merge: task_arithmetic, ties). What the training cost (wall/CPU/GPU seconds, examples
seen by student and teachers) is in ``info["distillation"]``, recorded as
``method_info.distillation``; ``extra_parameters`` is 0 (one model at inference).

Causal-LM methods (``needs=("batches", "lm")``, e.g. ``fusellm``) train the whole LM
(no heads) on the suite's fine-tuning sequences; the suite scores it like any merged LM.

The family's contract tests (tests/test_distillation_contract.py, parametrised over
every registered distillation method; a method that needs "lm" runs them on a tiny
Llama suite, tests/tiny_lm_suite.py): the same seed gives the same student; zero steps
return the initialisation; test labels are never read; a student trained from one expert
alone approaches that expert.
"""
