"""Checkpoint averaging: the uniform average of the experts, under the name the
cross-lingual merging literature gives it (Bandarkar et al., ICLR 2025, compare layer
swapping with "model souping" of the math and language experts).

θ = (1/N) Σ_t θ_t

The same computation as ``weight_average`` (Wortsman et al., 2022, the uniform soup),
registered again so that cross-lingual tables carry the baseline by the name their papers
use; the tensor merge is weight_average's own, not a copy.
"""

from __future__ import annotations

from harness.merging.stream import tensorwise
from harness.registry import register_method
from methods.merging.weight_average import weight_average

register_method(
    "checkpoint_average",
    family="merging",
    reference="https://arxiv.org/abs/2410.01335",
    description="Uniform average of the experts' checkpoints (the uniform soup), the "
    "cross-lingual baseline of layer swapping.",
)(tensorwise(weight_average.tensor_merge, rowwise=True))
