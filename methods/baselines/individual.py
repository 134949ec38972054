"""Individual: each task scored by its own fine-tuned expert.

The ceiling that merging tries to reach with one model, and the denominator of every
normalised accuracy. Keeping N experts stores N − 1 models more than one merged model,
which the record counts as extra parameters. A task no expert was trained on (a suite's
``reference_experts``: math in a second language) is scored with the first expert it is
composed from, the task-skill expert.
"""

from __future__ import annotations

from harness.method import MethodContext, Solution
from harness.registry import register_method


@register_method(
    "individual",
    family="baseline",
    reference="https://arxiv.org/abs/2212.04089",
    description="One fine-tuned expert per task (no merging): the upper reference.",
)
def individual(context: MethodContext) -> Solution:
    pool = context.pool  # a composed task comes as its expert's (Solution.model_for)
    return Solution(
        task_states=lambda task: pool.output_state(pool.expert_state(task)),
        extra_parameters=(len(pool.tasks) - 1) * pool.num_parameters(),
    )
