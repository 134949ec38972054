"""Transferability estimators: rank a model zoo for a target without fine-tuning
(``family="transferability"``).

Contract: each file defines ``score(inputs, *, seed, **hyperparameters) -> float`` and
registers it with ``@register_method(..., family="transferability", needs=("zoo",))`` on
top of ``@estimator(uses)`` (``harness.transferability.inputs``). ``inputs`` is one
(source, target) pair's :class:`~harness.transferability.inputs.TargetInputs`: the
source backbone's features on the target's *training* inputs (``[N, D]``), the training
labels (``[N]``), where ``uses="source_probs"`` the source head's probabilities over its
own classes (``[N, K]``), and facts about the source (upstream accuracy, size). It
returns one float: higher = expected to transfer better. No estimator sees validation
or test data. The wrapped method scores every source of every target of a zoo suite
(``harness.transferability.zoo.ZooSuite``), timing the estimator alone; the suite scores
the ranking by weighted Kendall τ against fine-tuned accuracy.

tests/test_transferability_contract.py checks every registered estimator (deterministic
under a seed, invariant to example order, more informative features score higher, test
labels never read); tests/test_transferability_equations.py checks the equations on
hand-computed cases.
"""
