"""SFDA (Shao et al., ECCV 2022): self-challenging Fisher discriminant analysis."""

from __future__ import annotations

import numpy as np

from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator
from harness.transferability.statistics import FisherDiscriminant, class_means


@register_method(
    "sfda",
    family="transferability",
    reference="https://arxiv.org/abs/2207.03036",
    needs=("zoo",),
)
@estimator("features")
def sfda(inputs: TargetInputs, *, seed: int = 0) -> float:
    """SFDA: Fisher-space posteriors, ConfMix hard examples, mean p(y_i | x_i) after refit.

    Stage one fits the regularised discriminant and softens its posteriors with a second
    softmax; ConfMix moves each example towards the mean of the *other* classes by
    1 − p(y_i | x_i); stage two refits with stage one's regularisation and scores the
    mean posterior of the true class (the authors drop the log for stability).
    """
    features = np.array(inputs.features, dtype=np.float64)
    labels = inputs.labels
    first = FisherDiscriminant().fit(features, labels)
    probs = first.predict_proba(features)
    probs = np.exp(probs) / np.exp(probs).sum(axis=1, keepdims=True)
    _, others = class_means(features, labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    confidence = probs[np.arange(len(labels)), inverse][:, None]
    mixed = confidence * features + (1 - confidence) * others[inverse]
    second = FisherDiscriminant(shrinkage=first.shrinkage).fit(mixed, labels)
    return float(np.mean(second.predict_proba(mixed)[np.arange(len(labels)), inverse]))
