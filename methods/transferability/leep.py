"""LEEP (Nguyen et al., ICML 2020): log expected empirical prediction from the source head."""

from __future__ import annotations

from harness.registry import register_method
from harness.transferability.inputs import TargetInputs, estimator
from harness.transferability.statistics import log_expected_empirical_prediction


@register_method(
    "leep",
    family="transferability",
    reference="https://arxiv.org/abs/2002.12462",
    needs=("zoo",),
)
@estimator("source_probs")
def leep(inputs: TargetInputs, *, seed: int = 0) -> float:
    """LEEP: mean log-likelihood of the target labels under the source head's dummy classifier."""
    return log_expected_empirical_prediction(inputs.source_probs, inputs.labels)
