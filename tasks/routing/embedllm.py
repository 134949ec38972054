"""embedllm: EmbedLLM's correctness table (Zhuang et al., 2024, "EmbedLLM: learning
compact representations of large language models", https://arxiv.org/abs/2410.02223;
dataset ``RZ412/EmbedLLM``, Apache-2.0).

112 open LLMs × about 36k questions (MMLU, GSM8K, TruthfulQA, ...) with whether each model
answered correctly, released in long form: ``train.csv``, ``val.csv`` and ``test.csv`` with
columns ``model_id``, ``prompt_id``, ``prompt``, ``label`` (0/1), and ``model_order.csv``
naming the models. The table is pivoted to queries × models as EmbedLLM's own kNN does
(a question's duplicate rows take the max; a model missing on a question counts 0), the
release's three files are the train, validation and test splits, and a ``category``
column, where present, gives the task (else one task, ``all``). Cost: 1 per query for
every model: the release has no cost, so this suite measures routing for quality.

Mirror: ``DIR/datasets/RZ412/EmbedLLM/`` (``hf download RZ412/EmbedLLM --repo-type
dataset``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import register_suite
from harness.weights.hub import Requirement
from tasks.routing.mirrored import MirroredOutcomes, Rows

FILES = {"train": "train.csv", "validation": "val.csv", "test": "test.csv"}
COLUMNS = ("model_id", "prompt_id", "prompt", "label")


@register_suite(
    "embedllm",
    reference="https://arxiv.org/abs/2410.02223",
    description="EmbedLLM: 112 LLMs × ~36k questions, per-question correctness, from a mirror.",
)
class EmbedLLMOutcomes(MirroredOutcomes):
    requirement = Requirement(
        "RZ412/EmbedLLM", "datasets", (*FILES.values(), "model_order.csv", "question_order.csv")
    )
    cost_unit = "queries (every model costs 1)"
    splits = {
        "train": "the release's train.csv",
        "validation": "the release's val.csv",
        "test": "the release's test.csv",
    }

    def read(self, root: Path) -> Rows:
        import pandas as pd

        frames = []
        for split, name in FILES.items():
            path = root / name
            if not path.is_file():
                raise HarnessError(f"the EmbedLLM release under {root} lacks {name}")
            frame = pd.read_csv(path)
            missing = [c for c in COLUMNS if c not in frame.columns]
            if missing:
                raise HarnessError(f"{path} lacks the columns {', '.join(missing)}")
            frame["split"] = split
            frames.append(frame)
        long = pd.concat(frames, ignore_index=True)
        if "category" not in long.columns:
            long["category"] = "all"
        model_ids = sorted(long["model_id"].unique().tolist())
        names = _model_names(root, model_ids)
        wide = long.pivot_table(
            index=["split", "prompt_id"], columns="model_id", values="label", aggfunc="max"
        ).reindex(columns=model_ids)
        wide = wide.fillna(0.0)
        first = long.drop_duplicates(["split", "prompt_id"]).set_index(["split", "prompt_id"])
        order = [(s, p) for s in FILES for p in wide.loc[s].index] if len(wide) else []
        wide = wide.loc[order]
        info = first.loc[order]
        return Rows(
            models=tuple(names),
            scores=np.clip(wide.to_numpy(dtype=float), 0.0, 1.0),
            costs=np.ones(wide.shape, dtype=float),
            tasks=[str(c) for c in info["category"]],
            splits=[s for s, _ in order],
            texts=[str(p) for p in info["prompt"]],
            ids=[f"{s}/{p}" for s, p in order],
        )


def _model_names(root: Path, model_ids: list) -> list[str]:
    import pandas as pd

    path = root / "model_order.csv"
    if path.is_file():
        order = pd.read_csv(path)
        if {"model_id", "model_name"} <= set(order.columns):
            lookup = dict(zip(order["model_id"], order["model_name"]))
            return [str(lookup.get(i, f"model-{i}")) for i in model_ids]
    return [f"model-{i}" for i in model_ids]
