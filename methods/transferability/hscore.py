"""H-score (Bao et al., ICIP 2019): tr(cov(f)⁻¹ cov(E[f | y]))."""

from __future__ import annotations

import numpy as np

from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator


def class_conditional_means(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """g(x_i) = E[f | y = y_i]: every row replaced by its class's mean feature."""
    classes, inverse = np.unique(labels, return_inverse=True)
    means = np.zeros((len(classes), features.shape[1]))
    np.add.at(means, inverse, features)
    means /= np.bincount(inverse)[:, None]
    return means[inverse]


@register_method(
    "hscore",
    family="transferability",
    reference="https://ieeexplore.ieee.org/document/8803726",
    needs=("zoo",),
)
@estimator("features")
def hscore(inputs: TargetInputs, *, seed: int = 0) -> float:
    """H-score: how much of the features' variance the class-conditional means explain."""
    features = np.asarray(inputs.features, dtype=np.float64)
    covariance = np.cov(features, rowvar=False)
    between = np.cov(class_conditional_means(features, inputs.labels), rowvar=False)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-15) @ between))
