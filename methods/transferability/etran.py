"""ETran (Gholami et al., ICCV 2023): energy score plus LDA score of the features."""

from __future__ import annotations

import numpy as np
from scipy import special

from harness.registry import Param, register_method
from harness.transferability.inputs import TargetInputs, estimator
from harness.transferability.statistics import FisherDiscriminant


def energy_score(features: np.ndarray, fraction: float) -> float:
    """Mean logsumexp of the features over the ``fraction`` of examples lowest in it.

    The features read as logits: a low energy −logsumexp marks an in-distribution input;
    the authors' classification runs average the lowest-energy 0.5% (``Energy_Score`` with
    percent 0.5, 'bot').
    """
    energies = np.sort(special.logsumexp(features, axis=1))
    kept = max(1, int(round(fraction * len(energies))))
    return float(energies[:kept].mean())


def lda_score(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean posterior of the true class under the regularised Fisher discriminant."""
    _, inverse = np.unique(labels, return_inverse=True)
    probs = FisherDiscriminant().fit(features, labels).predict_proba(features)
    return float(np.mean(probs[np.arange(len(labels)), inverse]))


@register_method(
    "etran",
    family="transferability",
    reference="https://arxiv.org/abs/2308.02027",
    needs=("zoo",),
    params={
        "energy_fraction": Param(0.005, "fraction of lowest-energy examples averaged", low=0.0)
    },
)
@estimator("features")
def etran(inputs: TargetInputs, *, seed: int = 0, energy_fraction: float = 0.005) -> float:
    """ETran for classification: S_en + S_lda (the SVD term is for detection only)."""
    features = np.asarray(inputs.features, dtype=np.float64)
    return energy_score(features, energy_fraction) + lda_score(features, inputs.labels)
