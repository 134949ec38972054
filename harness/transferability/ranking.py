"""How an estimator's ranking of a zoo is scored against fine-tuned ground truth.

The transferability literature (LogME, SFDA, ETran) reports the weighted Kendall τ of
``scipy.stats.weightedtau`` (hyperbolic weights, ties handled, top ranks weigh more)
between estimator scores and fine-tuned accuracies; Pearson's r and the top-1 regret
(how much accuracy picking the estimator's favourite loses against the best source)
are reported beside it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from scipy import stats

from harness.errors import HarnessError


def ranking_metrics(scores: Mapping[str, float], truth: Mapping[str, float]) -> dict[str, float]:
    """τ_w, Pearson r and top-1 regret (accuracy points) of ``scores`` against ``truth``.

    A constant score (an estimator that cannot tell the sources apart, such as model size
    in a zoo of one architecture) has no correlation: τ_w and r are 0 then, not NaN, and
    its top-1 pick is the first source in name order.
    """
    sources = sorted(truth)
    missing = [source for source in sources if source not in scores]
    if missing:
        raise HarnessError(f"the estimator scored no value for {', '.join(missing)}")
    if len(sources) < 2:
        raise HarnessError("ranking a zoo needs at least two sources")
    predicted = np.array([scores[source] for source in sources], dtype=np.float64)
    actual = np.array([truth[source] for source in sources], dtype=np.float64)
    constant = np.ptp(predicted) == 0 or np.ptp(actual) == 0
    with warnings.catch_warnings():  # two sources, or near-equal scores: r is still defined
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        tau = 0.0 if constant else float(stats.weightedtau(predicted, actual).statistic)
        pearson = 0.0 if constant else float(stats.pearsonr(predicted, actual).statistic)
    pick = sources[int(np.argmax(predicted))]
    return {
        "tau_w": tau,
        "pearson": pearson,
        "top1_regret": float(actual.max() - truth[pick]),
    }
