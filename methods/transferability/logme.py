"""LogME (You et al., ICML 2021): the maximum log evidence of a Bayesian linear model."""

from __future__ import annotations

import numpy as np

from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator

_TOLERANCE = 1e-5  # the authors' ε in the α, β updates


def _spectrum(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(σ_i = s_i², U) of F = U S Vᵀ over all D directions of FᵀF.

    For N > D the eigendecomposition of FᵀF (D × D) is cheaper than the SVD of F; zero
    singular values keep σ = 0 (their columns of U are never used: x_i = 0 there).
    """
    n, d = features.shape
    if n > d:
        sigma, v = np.linalg.eigh(features.T @ features)
        sigma = np.clip(sigma, 0.0, None)
        singular = np.sqrt(sigma)
        u = np.divide(features @ v, singular, out=np.zeros((n, d)), where=singular > 1e-10)
        return sigma, u
    # N ≤ D: the D − N directions outside the data have σ = 0 and enter log|A| as log α
    # (the authors' code leaves them out of the sum, which only matters for N < D)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    sigma = np.concatenate([s**2, np.zeros(d - len(s))])
    return sigma, np.concatenate([u, np.zeros((n, d - len(s)))], axis=1)


def _terms(sigma, x2, rest, alpha, beta):
    """‖m‖² and ‖y − Fm‖² at the posterior mean m for (α, β)."""
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    residual = float((x2 / (1 + sigma / t) ** 2).sum() + rest)
    return m2, residual


def _evidence(n, d, sigma, alpha, beta, m2, residual) -> float:
    """log p(y | F, α, β) / N (the paper's eq. 2, via the spectrum of FᵀF)."""
    value = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * np.sum(np.log(alpha + beta * sigma))
        - beta / 2.0 * residual
        - alpha / 2.0 * m2
        - n / 2.0 * np.log(2 * np.pi)
    )
    return float(value / n)


def log_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """The per-example log evidence of one target column at fixed (α, β)."""
    features = np.asarray(features, dtype=np.float64)
    n, d = features.shape
    sigma, u = _spectrum(features)
    x = u.T @ target
    x2 = x**2
    m2, residual = _terms(sigma, x2, float(target @ target - x2.sum()), alpha, beta)
    return _evidence(n, d, sigma, alpha, beta, m2, residual)


def maximum_evidence(
    sigma: np.ndarray, u: np.ndarray, target: np.ndarray, d: int, iterations: int = 11
) -> tuple[float, float, float]:
    """The authors' fixed-point iteration (You et al. 2021, arXiv:2110.10545, Alg. 2).

    α ← γ / ‖m‖², β ← (N − γ) / ‖y − Fm‖² with γ = Σ σ_i / (σ_i + α/β), from α = β = 1,
    until α/β moves by under 0.1%; returns (evidence / N, α, β).
    """
    n = len(target)
    x = u.T @ target
    x2 = x**2
    rest = float(target @ target - x2.sum())
    alpha, beta = 1.0, 1.0
    m2, residual = _terms(sigma, x2, rest, alpha, beta)
    for _ in range(iterations):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2, residual = _terms(sigma, x2, rest, alpha, beta)
        alpha = gamma / (m2 + _TOLERANCE)
        beta = (n - gamma) / (residual + _TOLERANCE)
        if abs(alpha / beta - t) / t <= 1e-3:
            break
    return _evidence(n, d, sigma, alpha, beta, m2, residual), alpha, beta


@register_method(
    "logme",
    family="transferability",
    reference="https://arxiv.org/abs/2102.11005",
    needs=("zoo",),
)
@estimator("features")
def logme(inputs: TargetInputs, *, seed: int = 0) -> float:
    """LogME: mean over classes of the maximised log evidence of a linear model on features."""
    features = np.asarray(inputs.features, dtype=np.float64)
    sigma, u = _spectrum(features)
    d = features.shape[1]
    evidences = [
        maximum_evidence(sigma, u, (inputs.labels == c).astype(np.float64), d)[0]
        for c in range(inputs.classes)
    ]
    return float(np.mean(evidences))
