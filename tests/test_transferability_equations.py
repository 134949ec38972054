"""The estimators' equations on cases small enough to compute by hand (or by brute force)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.transferability.inputs import TargetInputs
from harness.transferability.ranking import ranking_metrics
from harness.transferability.statistics import log_expected_empirical_prediction
from methods.transferability import gbc, hscore, logme, nce, pactran, transrate


def test_leep_two_by_two_by_hand():
    # θ(x) over two source classes for four examples, two target classes
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1])
    # P(y, z) = 1/4 Σ θ_z 1[y]: y=0: (1.7, 0.3)/4, y=1: (0.5, 1.5)/4; P(z) = (2.2, 1.8)/4
    p_y_given_z = np.array([[1.7 / 2.2, 0.3 / 1.8], [0.5 / 2.2, 1.5 / 1.8]])
    expected = np.mean([math.log(probs[i] @ p_y_given_z[labels[i]]) for i in range(4)])
    assert log_expected_empirical_prediction(probs, labels) == pytest.approx(expected, rel=1e-12)
    # a perfectly aligned one-hot source head predicts every label with probability 1
    assert log_expected_empirical_prediction(np.eye(2)[labels], labels) == pytest.approx(0.0)


def test_nce_by_hand():
    source = np.array([0, 0, 1, 1])
    labels = np.array([0, 1, 1, 1])
    # z=0: y uniform over {0, 1} (H = log 2), z=1: y certain (H = 0); P(z=0) = 1/2
    assert nce.negative_conditional_entropy(source, labels) == pytest.approx(-0.5 * math.log(2))
    assert nce.negative_conditional_entropy(labels, labels) == pytest.approx(0.0)


def test_hscore_on_a_small_matrix():
    features = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 3.0], [6.0, 3.0]])
    labels = np.array([0, 0, 1, 1])
    # class means (1, 1) and (5, 3): cov(g) = [[16/3, 8/3], [8/3, 4/3]]
    covariance = np.cov(features, rowvar=False)
    between = np.array([[16 / 3, 8 / 3], [8 / 3, 4 / 3]])
    expected = np.trace(np.linalg.inv(covariance) @ between)
    score = hscore.hscore.score(TargetInputs(features, labels), seed=0)
    assert score == pytest.approx(expected, rel=1e-10)


def _brute_force_evidence(features, target, alpha, beta):
    """log N(y | 0, α⁻¹ F Fᵀ + β⁻¹ I) / N, straight from the definition."""
    n = len(target)
    covariance = features @ features.T / alpha + np.eye(n) / beta
    return stats.multivariate_normal(np.zeros(n), covariance).logpdf(target) / n


@pytest.mark.parametrize("shape", [(12, 3), (4, 6)])  # N > D (eigh path) and N < D (SVD path)
def test_logme_evidence_equals_brute_force_at_fixed_alpha_beta(shape):
    rng = np.random.default_rng(0)
    features = rng.normal(size=shape)
    target = (rng.random(shape[0]) > 0.5).astype(np.float64)
    for alpha, beta in [(1.0, 1.0), (0.3, 2.5), (4.0, 0.2)]:
        closed = logme.log_evidence(features, target, alpha, beta)
        assert closed == pytest.approx(_brute_force_evidence(features, target, alpha, beta))


def test_logme_fixed_point_reaches_the_maximum_evidence():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 5))
    target = (features @ rng.normal(size=5) + 0.5 * rng.normal(size=40) > 0).astype(float)
    sigma, u = logme._spectrum(features)
    best, alpha, beta = logme.maximum_evidence(sigma, u, target, 5, iterations=200)
    grid = [
        _brute_force_evidence(features, target, a, b)
        for a in np.logspace(-3, 3, 25)
        for b in np.logspace(-3, 3, 25)
    ]
    assert best >= max(grid) - 1e-3
    assert best == pytest.approx(_brute_force_evidence(features, target, alpha, beta), abs=1e-4)


def test_transrate_coding_rate_by_hand():
    features = np.array([[1.0, 0.0], [-1.0, 0.0]])
    # ZᵀZ = diag(2, 0); log det(I + ZᵀZ/(n ε)) = log(1 + 2/(2 ε))
    assert transrate.coding_rate(features, 0.5) == pytest.approx(0.5 * math.log(3.0))


def test_gbc_bhattacharyya_by_hand():
    mu1, mu2, var = np.zeros(2), np.array([2.0, 0.0]), np.ones(2)
    # equal covariances: D_B = (μ1−μ2)ᵀ Σ⁻¹ (μ1−μ2) / 8 = 4/8
    assert gbc.bhattacharyya_distance(mu1, var, mu2, var) == pytest.approx(0.5)
    # D_B(var 1 vs var 4, same mean, 1-D) = ½ log(2.5 / 2)
    one, four = np.ones(1), np.full(1, 4.0)
    assert gbc.bhattacharyya_distance(np.zeros(1), one, np.zeros(1), four) == pytest.approx(
        0.5 * math.log(2.5 / 2.0)
    )


def test_pactran_prefers_an_aligned_source_head():
    labels = np.array([0, 0, 1, 1, 0, 1])
    aligned = np.eye(2)[labels] * 0.98 + 0.01
    blind = np.full((6, 2), 0.5)
    assert pactran.pactran_dirichlet(aligned, labels, 1.0) > pactran.pactran_dirichlet(
        blind, labels, 1.0
    )


def test_ranking_metrics_match_scipy_and_regret_by_hand():
    truth = {"a": 90.0, "b": 80.0, "c": 70.0, "d": 60.0}
    perfect = ranking_metrics({"a": 4, "b": 3, "c": 2, "d": 1}, truth)
    assert perfect["tau_w"] == pytest.approx(1.0) and perfect["top1_regret"] == 0.0
    swapped = ranking_metrics({"a": 3, "b": 4, "c": 2, "d": 1}, truth)
    assert swapped["top1_regret"] == pytest.approx(10.0)
    expected = stats.weightedtau([3, 4, 2, 1], [90, 80, 70, 60]).statistic
    assert swapped["tau_w"] == pytest.approx(expected) and swapped["tau_w"] < 1.0
    constant = ranking_metrics({"a": 1, "b": 1, "c": 1, "d": 1}, truth)
    assert constant["tau_w"] == 0.0 and constant["pearson"] == 0.0
