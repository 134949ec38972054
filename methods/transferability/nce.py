"""NCE (Tran et al., ICCV 2019): negative conditional entropy of target given source labels."""

from __future__ import annotations

import numpy as np

from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator
from harness.transferability.statistics import one_hot


def negative_conditional_entropy(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """−H(Y | Z) = Σ_{y,z} P̂(y, z) log P̂(y | z) of the empirical joint of hard labels."""
    joint = one_hot(labels).T @ one_hot(source_labels) / len(labels)  # [C_t, C_s]
    marginal = joint.sum(axis=0, keepdims=True)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    logs = np.log(conditional, out=np.zeros_like(conditional), where=conditional > 0)
    return float((joint * logs).sum())


@register_method(
    "nce",
    family="transferability",
    reference="https://arxiv.org/abs/1908.08142",
    needs=("zoo",),
)
@estimator("source_probs")
def nce(inputs: TargetInputs, *, seed: int = 0) -> float:
    """NCE: −H(target label | the source head's argmax label)."""
    source_labels = np.argmax(inputs.source_probs, axis=1)
    return negative_conditional_entropy(source_labels, inputs.labels)
