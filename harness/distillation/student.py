"""Where the student starts: the pretrained model, or a registered merge of the experts.

"Merge then distil" starts from a data-free merge (task arithmetic, TIES) built by the
registered merging method itself, so the student's starting point is exactly the model
that method's own leaderboard row scores (at the given scaling λ).
"""

from __future__ import annotations

from typing import Any

from harness.method import MethodContext, StateDict
from harness.registry import METHODS

INITS = ("pretrained", "task_arithmetic", "ties")


def initial_state(
    context: MethodContext, init: str, scaling: float
) -> tuple[StateDict, dict[str, Any]]:
    """The student's starting weights (pool names, stored dtypes) and how they were made."""
    if init == "pretrained":
        return context.pool.output_state({}), {"method": "pretrained"}
    entry = METHODS.get(init)
    hyperparameters = entry.resolve_params({"scaling": scaling})
    solution = entry.obj(context, **hyperparameters)
    return dict(solution.state), {"method": init, "hyperparameters": hyperparameters}
