"""The hyperparameters every distillation method shares, with their defaults and sources.

The budget (``steps``, ``batch_size``, ``examples``) is a hyperparameter like any other:
``--set steps=100`` runs a smaller budget, and the record says which one ran. None has a
selection grid: every candidate would train a student, so distillation runs its defaults
unless values are fixed with ``--set``.

The student's optimiser is the experts' fine-tuning recipe of task arithmetic (Ilharco et
al., ICLR 2023, https://arxiv.org/abs/2212.04089, App. B: AdamW, learning rate 1e-5,
weight decay 0.1, cosine schedule with warmup): the student is fine-tuned as the experts
were. On a suite whose experts were trained with another recipe, pass that suite's
values (mini8's experts: lr 3e-4). Deviation: warmup is a fraction of the steps (10%)
rather than the paper's 500 steps, so small budgets still decay.
"""

from __future__ import annotations

from typing import Any

from harness.distillation.budget import Budget
from harness.distillation.loop import Optimiser
from harness.distillation.student import INITS
from harness.registry import Param

BUDGET_PARAMS = {
    "steps": Param(1000, help="optimisation steps (the budget)", low=0),
    "batch_size": Param(32, help="train inputs per task per step", low=1),
    "examples": Param(0, help="train examples per task the student may see (0: all)", low=0),
}
OPTIMISER_PARAMS = {
    "lr": Param(1e-5, help="AdamW peak learning rate", low=0.0),
    "weight_decay": Param(0.1, help="AdamW weight decay", low=0.0),
    "warmup": Param(0.1, help="linear-warmup fraction of the steps", low=0.0, high=1.0),
}
INIT_PARAMS = {
    "init": Param("pretrained", help="the student's start ('merge then distil')", choices=INITS),
    "init_scaling": Param(
        0.3, help="λ of the init merge (task_arithmetic's paper value)", low=0.0, high=3.0
    ),
}
LABEL_PARAMS = {
    "label_weight": Param(
        0.0, help="α: weight of cross-entropy on train labels (0: unlabeled)", low=0.0, high=1.0
    ),
}
SHARED_PARAMS = {**BUDGET_PARAMS, **OPTIMISER_PARAMS, **INIT_PARAMS, **LABEL_PARAMS}
#: causal-LM methods: their LM term is the gold-token term, so no ``label_weight``
LM_PARAMS = {**BUDGET_PARAMS, **OPTIMISER_PARAMS, **INIT_PARAMS}
SMOKE = {"steps": 3, "batch_size": 16}  # the contract tests' tiny budget


def split(values: dict[str, Any]) -> tuple[Budget, Optimiser, dict[str, Any]]:
    """The shared hyperparameters as a Budget, an Optimiser and the init/label settings."""
    budget = Budget(values["steps"], values["batch_size"], values["examples"])
    optimiser = Optimiser(values["lr"], values["weight_decay"], values["warmup"])
    rest = {key: values[key] for key in (*INIT_PARAMS, *LABEL_PARAMS) if key in values}
    return budget, optimiser, rest
