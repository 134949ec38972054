"""routellm-gsm8k: RouteLLM's GSM8K outcome table (Ong et al., 2024, "RouteLLM: learning
to route LLMs with preference data", https://arxiv.org/abs/2406.18665; lm-sys/RouteLLM,
Apache-2.0).

Two models, the strong ``gpt-4-1106-preview`` and the weak ``mixtral-8x7b-instruct-v0.1``,
with each one's correctness on each of GSM8K's 1,319 test questions as released in
``routellm/evals/gsm8k/gsm8k_responses.csv`` (columns ``prompt``, one True/False column
per model, and the responses). Cost: 1 per call to the strong model, 0 to the weak one,
so mean cost is RouteLLM's fraction of strong calls and APGR / CPT are RouteLLM's
definitions exactly. RouteLLM trains its routers on Chatbot Arena preferences and tests
on all of GSM8K; an outcome table has no Arena data, so here a fixed seeded half of the
questions is the routers' train split and the other half the test split. The strong and
weak models' accuracies over all questions (85.7% and 63.8% as RouteLLM reports) are a
check on the file (see tests).

Mirror: ``DIR/datasets/lm-sys/RouteLLM/`` holding the repository (its
``routellm/evals/gsm8k/gsm8k_responses.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import register_suite
from harness.weights.hub import Requirement
from tasks.routing.mirrored import MirroredOutcomes, Rows, fixed_split

STRONG = "gpt-4-1106-preview"
WEAK = "mixtral-8x7b-instruct-v0.1"
FILE = "routellm/evals/gsm8k/gsm8k_responses.csv"
FETCH = "git clone --depth 1 https://github.com/lm-sys/RouteLLM $MIRROR/datasets/lm-sys/RouteLLM"


@register_suite(
    "routellm-gsm8k",
    reference="https://arxiv.org/abs/2406.18665",
    description="RouteLLM's GPT-4 vs Mixtral correctness on GSM8K: strong/weak routing, "
    "APGR and CPT, from a mirror.",
)
class RouteLLMGsm8k(MirroredOutcomes):
    requirement = Requirement("lm-sys/RouteLLM", "datasets", fetch=FETCH)
    tasks = ["gsm8k"]
    cost_unit = "calls to the strong model"
    splits = {
        "train": "a fixed seeded half of the 1,319 questions, minus a 10% carve",
        "validation": "a fixed 10% of the train half",
        "test": "the other half",
    }

    def read(self, root: Path) -> Rows:
        import pandas as pd

        path = root / FILE
        if not path.is_file():
            raise HarnessError(f"the RouteLLM release under {root} lacks {FILE}; {FETCH}")
        frame = pd.read_csv(path)
        missing = [c for c in ("prompt", STRONG, WEAK) if c not in frame.columns]
        if missing:
            raise HarnessError(f"{path} lacks the columns {', '.join(missing)}")
        models = (WEAK, STRONG)
        scores = np.stack([_truth(frame[m], path) for m in models], axis=1)
        costs = np.broadcast_to(np.array([0.0, 1.0]), scores.shape).copy()
        tasks = ["gsm8k"] * len(frame)
        return Rows(
            models=models,
            scores=scores,
            costs=costs,
            tasks=tasks,
            splits=fixed_split(tasks, 0.5),
            texts=[str(p) for p in frame["prompt"]],
            ids=[f"gsm8k/{i}" for i in range(len(frame))],
        )


def _truth(column, path: Path) -> np.ndarray:
    values = column.astype(str).str.strip().str.lower()
    if not values.isin(["true", "false"]).all():
        raise HarnessError(f"{path}: column {column.name} must hold True/False")
    return (values == "true").to_numpy(dtype=float)
