"""GBC (Pándy et al., CVPR 2022): Gaussian Bhattacharyya coefficients between target classes."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from harness.registry import Param, register_method
from harness.transferability.inputs import TargetInputs, estimator

_MIN_VARIANCE = 1e-4  # the authors' floor on per-dimension variance


def bhattacharyya_distance(mu1, var1, mu2, var2) -> float:
    """D_B between two Gaussians with diagonal covariances ``var1``, ``var2``."""
    average = (var1 + var2) / 2
    mahalanobis = float(np.sum((mu1 - mu2) ** 2 / average)) / 8
    logs = np.sum(np.log(average)) - 0.5 * (np.sum(np.log(var1)) + np.sum(np.log(var2)))
    return mahalanobis + 0.5 * float(logs)


def gbc_from_features(features: np.ndarray, labels: np.ndarray, gaussian: str) -> float:
    """−Σ_{c ≠ c'} exp(−D_B(c, c')) over ordered pairs of per-class Gaussians."""
    stats = []
    for label in np.unique(labels):
        rows = features[labels == label]
        variance = np.maximum(rows.var(axis=0), _MIN_VARIANCE)
        if gaussian == "spherical":
            variance = np.full_like(variance, variance.mean())
        stats.append((rows.mean(axis=0), variance))
    total = 0.0
    for i, (mu1, var1) in enumerate(stats):
        for j, (mu2, var2) in enumerate(stats):
            if i != j:
                total += np.exp(-bhattacharyya_distance(mu1, var1, mu2, var2))
    return float(-total)


@register_method(
    "gbc",
    family="transferability",
    reference="https://arxiv.org/abs/2110.06893",
    needs=("zoo",),
    params={
        "gaussian": Param("diagonal", "per-class covariance", choices=("diagonal", "spherical")),
        "dimensions": Param(64, "PCA dimensions before fitting the Gaussians", low=1),
    },
)
@estimator("features")
def gbc(
    inputs: TargetInputs, *, seed: int = 0, gaussian: str = "diagonal", dimensions: int = 64
) -> float:
    """GBC: class overlap in feature space, negated (less overlap transfers better)."""
    features = np.asarray(inputs.features, dtype=np.float64)
    kept = min(dimensions, *features.shape)
    reduced = PCA(n_components=kept, svd_solver="full").fit_transform(features)
    return gbc_from_features(reduced, inputs.labels, gaussian)
