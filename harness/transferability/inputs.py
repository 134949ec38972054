"""What a transferability estimator sees, and how a scoring function becomes a method.

An estimator is a pure function ``score(inputs, *, seed, **hyperparameters) -> float``
(higher = the source is expected to transfer better). ``inputs`` holds only what the
literature's estimators use and what a user has before fine-tuning: the source model's
features on the target's *training* inputs, the training labels and, for estimators that
read a source classifier (LEEP, NCE, PACTran), the source head's probabilities over the
source classes. Validation and test data never enter it.

:func:`estimator` wraps such a function into the harness's method contract
(``fn(context, **hyperparameters) -> Solution``): the wrapped method scores every source of
every target of a zoo suite (:class:`harness.transferability.zoo.ZooSuite`), timing the
estimator alone, and returns one :class:`~harness.transferability.zoo.ZooScores` per
target, which the suite's ``evaluate`` turns into τ_w against the fine-tuned ground truth.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from harness.errors import HarnessError
from harness.method import MethodContext, Solution, hash_seed

#: What an estimator may read from :class:`TargetInputs`, beyond the labels.
USES = ("features", "source_probs", "source_facts")


@dataclass(frozen=True)
class TargetInputs:
    """One (source, target) pair, training split only.

    ``features``: ``[N, D]`` float64, the source backbone's output on the target's training
    inputs; ``labels``: ``[N]`` int64 in ``[0, C)``; ``source_probs``: ``[N, K]`` float64,
    the source classifier's softmax over its own ``K`` classes (None where the source has
    no classifier); ``source_facts``: what is known about the source without the target
    (``accuracy``: its own upstream accuracy in percent, ``parameters``: its size).
    """

    features: np.ndarray
    labels: np.ndarray
    source_probs: np.ndarray | None = None
    source_facts: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.labels.ndim != 1:
            raise HarnessError("estimator inputs need features [N, D] and labels [N]")
        if len(self.features) != len(self.labels):
            raise HarnessError(
                f"estimator inputs: {len(self.features)} feature rows but "
                f"{len(self.labels)} labels; extract features and labels from the same split"
            )
        if self.source_probs is not None and len(self.source_probs) != len(self.labels):
            raise HarnessError("estimator inputs: source_probs must have one row per label")

    @property
    def classes(self) -> int:
        return int(self.labels.max()) + 1

    def permuted(self, order: np.ndarray) -> TargetInputs:
        """The same examples in another order (the contract's permutation check)."""
        probs = None if self.source_probs is None else self.source_probs[order]
        return TargetInputs(self.features[order], self.labels[order], probs, self.source_facts)


ScoreFunction = Callable[..., float]


def estimator(uses: str) -> Callable[[ScoreFunction], Callable[..., Solution]]:
    """Turn ``score(inputs, *, seed, **hyperparameters) -> float`` into a zoo method.

    ``uses`` says which input the estimator reads ("features", "source_probs" or
    "source_facts"): a zoo whose sources lack a classifier refuses a "source_probs"
    estimator in one line. The returned method keeps the scoring function as
    ``.score`` and the input as ``.uses``, so the family's contract tests call the
    estimator directly, and ``register_method`` reads its docstring.
    """
    if uses not in USES:
        raise ValueError(f"uses must be one of {USES}, got {uses!r}")

    def decorator(score: ScoreFunction) -> Callable[..., Solution]:
        @functools.wraps(score)
        def method(context: MethodContext, **hyperparameters: Any) -> Solution:
            return rank_zoo(context, score, uses, hyperparameters)

        method.score = score  # type: ignore[attr-defined]
        method.uses = uses  # type: ignore[attr-defined]
        del method.__wrapped__  # the runner calls method(context, ...), not score's signature
        return method

    return decorator


def rank_zoo(
    context: MethodContext, score: ScoreFunction, uses: str, hyperparameters: Mapping[str, Any]
) -> Solution:
    """Score every source of every target of the context's zoo suite with ``score``.

    Each call runs with one BLAS/OpenMP thread: the matrices are small (N × D with D in
    the tens to thousands), and on shared cores threaded BLAS spins waiting for partners
    (NLEEP's mixture fit on zoo-mini8 ran for minutes per target at load 9 on two cores
    with the default threads, about a second with one).
    """
    from harness.transferability.zoo import ZooScores, ZooSuite

    suite = context.suite
    if not isinstance(suite, ZooSuite):
        raise HarnessError(
            f"a transferability estimator ranks a model zoo; {suite.name!r} is not a zoo "
            "suite (pick one with `harness list tasks`, e.g. zoo-mini8)"
        )
    if uses == "source_probs" and not suite.has_source_classifiers:
        raise HarnessError(
            f"{suite.name!r}'s sources have no classifier over source classes, which this "
            "estimator reads; pick a feature-based estimator"
        )
    scores: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    with threadpool_limits(1):  # outside the timing: the limit itself costs ~10 ms
        for target in suite.tasks:
            per_source: dict[str, float] = {}
            spent = 0.0
            for source in suite.sources(target):
                if uses == "source_facts":  # target-blind: no features are extracted for it
                    facts = suite.source_facts(source, target)
                    empty = np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
                    inputs = TargetInputs(*empty, None, facts)
                else:
                    inputs = suite.target_inputs(source, target)
                seed = hash_seed(context.seed, f"{source}/{target}")
                tick = time.perf_counter()
                value = float(score(inputs, seed=seed, **hyperparameters))
                spent += time.perf_counter() - tick
                if not np.isfinite(value):
                    raise HarnessError(
                        f"{score.__name__} gave {value} for source {source!r} on {target!r}; "
                        "its inputs are degenerate (constant features or a single class?)"
                    )
                per_source[source] = value
            scores[target] = per_source
            seconds[target] = spent
    return Solution(
        task_modules=lambda target: ZooScores(scores[target], seconds[target]),
        info={
            "scores": scores,
            "estimator_s": seconds,
            "estimator_total_s": float(sum(seconds.values())),
        },
    )
