"""An outcome table from a classification suite's own experts: every model of the pool
(the pretrained model and each expert) scored item by item on every task.

Per item and model the score is 1 when the task's frozen head puts the true class first.
What a router reads of an item is the *pretrained* model's output for it (the pooled
features every expert starts from: an image's feature vector, a sentence's embedding),
so routing costs one pretrained pass plus the chosen model. The cost of a model on an
item is its parameters plus those of the task's head. Items keep the suite's batch order
(the same for every model), so row i is the same item for every column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from harness.progress import progress_bar
from harness.routing.table import OutcomeTable
from harness.suite import ClassificationSuite

PRETRAINED = "pretrained"


@torch.no_grad()
def score_experts(suite: ClassificationSuite, splits: Mapping[str, str], directory: Path) -> None:
    """Write ``outcomes.safetensors`` and ``rows.json`` into ``directory``: each of the
    suite's splits in ``splits`` (suite split → table split) for every model and task."""
    pool = suite.pool()
    models = [PRETRAINED, *suite.tasks]
    device = suite.context.device
    scores: dict[str, list[np.ndarray]] = {model: [] for model in models}
    features: list[np.ndarray] = []
    tasks: list[str] = []
    table_splits: list[str] = []
    ids: list[str] = []
    parameters: dict[tuple[str, str], int] = {}
    for model in progress_bar(
        models, desc=f"{suite.name} outcomes", enabled=suite.context.progress
    ):
        state = pool.base_state() if model == PRETRAINED else pool.expert_state(model)
        network = suite.build_model(state).to(device)
        size = sum(p.numel() for p in network.parameters())
        for task in suite.tasks:
            head = suite.head(task).to(device)
            parameters[model, task] = size + sum(p.numel() for p in head.parameters())
            for split, table_split in splits.items():
                position = 0
                for inputs, labels in suite.batches(task, split):
                    out = network(inputs.to(device))
                    right = (head(out).argmax(dim=1).cpu() == labels.cpu()).numpy()
                    scores[model].append(right.astype(np.float32))
                    if model == PRETRAINED:
                        features.append(out.float().cpu().numpy())
                        tasks += [task] * len(labels)
                        table_splits += [table_split] * len(labels)
                        ids += [f"{task}/{split}/{position + i}" for i in range(len(labels))]
                    position += len(labels)
    costs = np.array([[parameters[m, task] for m in models] for task in tasks], dtype=np.float64)
    save_file(
        {
            "scores": np.stack([np.concatenate(scores[m]) for m in models], axis=1),
            "costs": costs,
            "features": np.concatenate(features).astype(np.float32),
        },
        str(directory / "outcomes.safetensors"),
    )
    (directory / "rows.json").write_text(
        json.dumps({"models": models, "tasks": tasks, "splits": table_splits, "ids": ids})
    )


def read_table(root: Path) -> OutcomeTable:
    """The table :func:`score_experts` wrote."""
    tensors = load_file(str(root / "outcomes.safetensors"))
    rows = json.loads((root / "rows.json").read_text())
    return OutcomeTable(
        models=tuple(rows["models"]),
        scores=tensors["scores"].astype(np.float64),
        costs=tensors["costs"],
        tasks=np.array(rows["tasks"], dtype=object),
        splits=np.array(rows["splits"], dtype=object),
        features=tensors["features"],
        ids=tuple(rows["ids"]),
    )
