"""N-LEEP (Li et al., CVPR 2021): LEEP with a Gaussian mixture on features as the source head."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from harness.registry import Param, register_method
from harness.transferability.inputs import TargetInputs, estimator
from harness.transferability.statistics import log_expected_empirical_prediction


@register_method(
    "nleep",
    family="transferability",
    reference="https://arxiv.org/abs/2011.11200",
    needs=("zoo",),
    params={
        "variance": Param(0.8, "fraction of variance PCA keeps", low=0.01, high=1.0),
        "components_per_class": Param(5, "GMM components per target class", low=1),
    },
)
@estimator("features")
def nleep(
    inputs: TargetInputs, *, seed: int = 0, variance: float = 0.8, components_per_class: int = 5
) -> float:
    """N-LEEP: PCA (80% variance), a full-covariance GMM with 5 components per class, LEEP."""
    features = np.asarray(inputs.features, dtype=np.float64)
    reduced = PCA(n_components=variance if variance < 1.0 else None, svd_solver="full")
    reduced = reduced.fit_transform(features)
    components = min(components_per_class * inputs.classes, len(features))
    mixture = GaussianMixture(n_components=components, random_state=seed % (2**32))
    # k-means initialisation depends on row order: fit on a canonical order (rows sorted
    # lexicographically) so that the score is a function of the set of examples
    canonical = np.lexsort(reduced.T[::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(reduced[canonical])
    return log_expected_empirical_prediction(mixture.predict_proba(reduced), inputs.labels)
