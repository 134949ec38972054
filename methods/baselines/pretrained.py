"""Pretrained: the base model, unchanged, scored with every task's head.

The floor of the table: what the suite's base model does before any fine-tuning (for
CLIP suites, zero-shot classification).
"""

from __future__ import annotations

from harness.method import MethodContext, Solution
from harness.registry import register_method


@register_method(
    "pretrained",
    family="baseline",
    reference="https://arxiv.org/abs/2103.00020",
    description="The base model as it is (zero-shot for CLIP suites).",
)
def pretrained(context: MethodContext) -> Solution:
    return Solution(state=context.pool.output_state({}))  # the base, in its stored dtypes
