"""Statistics several estimators share, written once: LEEP's expected empirical prediction
and SFDA's regularised Fisher discriminant (ETran's LDA score reuses it).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def one_hot(labels: np.ndarray, classes: int | None = None) -> np.ndarray:
    classes = int(labels.max()) + 1 if classes is None else classes
    encoded = np.zeros((len(labels), classes), dtype=np.float64)
    encoded[np.arange(len(labels)), labels] = 1.0
    return encoded


def log_expected_empirical_prediction(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al. 2020, eq. 2): mean log Σ_z P̂(y_i | z) θ(x_i)_z.

    The empirical joint P̂(y, z) = 1/N Σ_i θ(x_i)_z 1[y_i = y] gives P̂(y | z); a source
    class z that no example reaches (P̂(z) = 0) multiplies θ_z = 0 everywhere, so its
    conditional is set to 0 instead of dividing by zero.
    """
    probs = np.asarray(probs, dtype=np.float64)
    joint = one_hot(labels).T @ probs / len(labels)  # [C_t, C_s]: P̂(y, z)
    marginal = joint.sum(axis=0, keepdims=True)  # P̂(z)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = probs @ conditional.T  # [N, C_t]: Σ_z P̂(y | z) θ(x)_z
    return float(np.mean(np.log(expected[np.arange(len(labels)), labels])))


def _covariance(x: np.ndarray, shrinkage: float = -1.0) -> np.ndarray:
    """Biased empirical covariance, shrunk towards μ·I by ``shrinkage`` when ≥ 0."""
    covariance = np.atleast_2d(np.cov(x.T, bias=True))
    if shrinkage < 0:
        return covariance
    mu = np.trace(covariance) / covariance.shape[0]
    shrunk = (1.0 - shrinkage) * covariance
    shrunk.flat[:: covariance.shape[0] + 1] += shrinkage * mu
    return shrunk


def largest_eigenvalue(matrix: np.ndarray, iterations: int = 3) -> float:
    """SFDA's power iteration (three steps from the row sums) for the regularisation."""
    x = matrix.sum(axis=1)
    y = x
    for _ in range(iterations):
        step = matrix @ x
        y = step / np.linalg.norm(step)
        step = matrix @ y
        x = step / np.linalg.norm(step)
    return float(x @ matrix @ y)


class FisherDiscriminant:
    """SFDA's regularised Fisher discriminant (Shao et al. 2022, §3.1).

    Within-class scatter S_w (prior-weighted class covariances) is shrunk towards a scaled
    identity by λ = exp(-5 · σ_max(S_w)) unless ``shrinkage`` is given; the between-class
    scatter is S_b = S_t(λ) − S_w(λ); the projection solves S_b v = e S_w(λ) v; class
    posteriors are a softmax of the linear discriminant in the projected space.
    """

    def __init__(self, shrinkage: float | None = None) -> None:
        self.shrinkage = shrinkage

    def fit(self, x: np.ndarray, labels: np.ndarray) -> FisherDiscriminant:
        classes, y = np.unique(labels, return_inverse=True)
        counts = np.bincount(y)
        self.priors = counts / len(y)
        means = np.zeros((len(classes), x.shape[1]))
        np.add.at(means, y, x)
        means /= counts[:, None]
        within = sum(
            self.priors[index] * _covariance(x[y == index]) for index in range(len(classes))
        )
        if self.shrinkage is None:
            self.shrinkage = max(float(np.exp(-5 * largest_eigenvalue(within))), 1e-10)
        total = _covariance(x, self.shrinkage)
        dimension = within.shape[0]
        mu = np.trace(within) / dimension
        shrunk_within = (1.0 - self.shrinkage) * within
        shrunk_within.flat[:: dimension + 1] += self.shrinkage * mu
        between = total - shrunk_within
        values, vectors = linalg.eigh(between, shrunk_within)
        vectors = vectors[:, np.argsort(values)[::-1]]
        self.coef = means @ vectors @ vectors.T
        self.intercept = -0.5 * np.diag(means @ self.coef.T) + np.log(self.priors)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def class_means(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each class's mean and the mean of the other classes' means (SFDA's ConfMix)."""
    classes, y = np.unique(labels, return_inverse=True)
    counts = np.bincount(y)
    means = np.zeros((len(classes), x.shape[1]))
    np.add.at(means, y, x)
    means /= counts[:, None]
    others = (means.sum(axis=0, keepdims=True) - means) / max(len(classes) - 1, 1)
    return means, others
