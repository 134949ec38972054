"""Shrinkage H-score (Ibrahim et al., ICLR 2023): H-score with a Ledoit–Wolf covariance."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator
from methods.transferability.hscore import class_conditional_means


@register_method(
    "shrinkage_hscore",
    family="transferability",
    reference="https://arxiv.org/abs/2212.00212",
    needs=("zoo",),
)
@estimator("features")
def shrinkage_hscore(inputs: TargetInputs, *, seed: int = 0) -> float:
    """Regularised H-score: tr(Σ_α⁻¹ (1 − α) cov(E[f | y])), Σ_α, α from Ledoit–Wolf."""
    features = np.asarray(inputs.features, dtype=np.float64)
    features = features - features.mean(axis=0, keepdims=True)
    estimate = LedoitWolf(assume_centered=False).fit(features)
    between = np.cov(class_conditional_means(features, inputs.labels), rowvar=False)
    shrunk_between = (1.0 - estimate.shrinkage_) * between
    return float(np.trace(np.linalg.pinv(estimate.covariance_, rcond=1e-15) @ shrunk_between))
