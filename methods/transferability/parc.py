"""PARC (Bolya et al., NeurIPS 2021): pairwise annotation representation comparison."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA

from harness.registry import Param, register_method
from harness.transferability.inputs import TargetInputs, estimator
from harness.transferability.statistics import one_hot


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(matrix.shape[0], 1)]


@register_method(
    "parc",
    family="transferability",
    reference="https://arxiv.org/abs/2111.06977",
    needs=("zoo",),
    params={"dimensions": Param(32, "PCA dimensions of the features", low=1)},
)
@estimator("features")
def parc(inputs: TargetInputs, *, seed: int = 0, dimensions: int = 32) -> float:
    """PARC: Spearman ρ (×100) between the examples' feature and label dissimilarities."""
    features = np.asarray(inputs.features, dtype=np.float64)
    kept = min(dimensions, *features.shape)
    reduced = PCA(n_components=kept, svd_solver="full").fit_transform(features)
    reduced = (reduced - reduced.mean(axis=0)) / np.maximum(reduced.std(axis=0), 1e-12)
    feature_distance = 1 - np.corrcoef(reduced)
    label_distance = 1 - np.corrcoef(one_hot(inputs.labels))
    rho = stats.spearmanr(_upper(feature_distance), _upper(label_distance)).statistic
    return float(rho) * 100
