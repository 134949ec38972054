"""TransRate (Huang et al., ICML 2022): mutual information as a difference of coding rates."""

from __future__ import annotations

import numpy as np

from harness.registry import Param, register_method
from harness.transferability.inputs import TargetInputs, estimator


def coding_rate(features: np.ndarray, eps: float) -> float:
    """R(Z, ε) = ½ log det(I + d/(n ε²)… ) as in the authors' code: ½ log det(I + ZᵀZ/(n ε))."""
    n, d = features.shape
    _, logdet = np.linalg.slogdet(np.eye(d) + features.T @ features / (n * eps))
    return 0.5 * float(logdet)


@register_method(
    "transrate",
    family="transferability",
    reference="https://arxiv.org/abs/2106.09362",
    needs=("zoo",),
    params={"eps": Param(1e-4, "distortion ε of the coding rate", low=0.0)},
)
@estimator("features")
def transrate(inputs: TargetInputs, *, seed: int = 0, eps: float = 1e-4) -> float:
    """TransRate: R(Z) − mean over classes of R(Z_c), on centred features."""
    features = np.asarray(inputs.features, dtype=np.float64)
    features = features - features.mean(axis=0, keepdims=True)
    classes = inputs.classes
    within = sum(coding_rate(features[inputs.labels == c], eps) for c in range(classes))
    return coding_rate(features, eps) - within / classes
