"""mini8-outcomes: an outcome table built from the harness's own mini8 experts, offline.

Candidates: the pretrained tower and the eight fine-tuned experts of mini8 (nine
models), each scored item by item on every task with that task's frozen head (score 1
when the top-1 class is right). Queries are images, which have no text: what a router
reads of a query is the *pretrained* tower's feature vector of the image (the pooled
output every expert starts from), so routing costs one pretrained pass plus the chosen
model. Rows: mini8's ``validation`` items (held out from fine-tuning and from the heads)
are the routers' ``train`` rows, a fixed 10% of them ``validation``; mini8's ``test``
items are ``test``. Cost: parameters per query of the answering model (tower + the
task's head). All nine share one architecture, so every candidate costs the same and
the λ sweep cannot trade quality for cost here: a router's curve is one point and its
AIQ its accuracy. What routing buys on this suite is accuracy on a task-mixed stream
with the task hidden, against one expert for everything (best_single) and the oracle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from harness.cache import cached_directory, content_key, file_sha256
from harness.progress import note, progress_bar
from harness.registry import register_suite
from harness.routing.suite import OutcomeSuite
from harness.routing.table import OutcomeTable
from harness.suite import Artifact, SuiteContext

BUILD_VERSION = 1
PRETRAINED = "pretrained"


@register_suite(
    "mini8-outcomes",
    reference="https://arxiv.org/abs/2403.12031",
    description="mini8's pretrained model and 8 experts scored per item on every task: "
    "routers over a real outcome table, offline.",
)
class Mini8Outcomes(OutcomeSuite):
    """Nine mini8 models × every mini8 test item, per-item correctness, parameter cost."""

    cost_unit = "parameters per query"
    merge_suite = "mini8"  # its merges are drawn beside the routers (leaderboard)
    splits = {
        "train": "mini8's validation items (held out from fine-tuning), minus a 10% carve",
        "validation": "a fixed 10% of mini8's validation items",
        "test": "mini8's test items",
    }

    def _mini8(self):
        from tasks.vision.mini8.suite import Mini8

        suite = Mini8(
            SuiteContext(
                mirror=self.context.mirror,
                cache_dir=self.context.cache_dir,
                device=self.context.device,
                seed=self.context.seed,
                progress=self.context.progress,
            )
        )
        suite.prepare()
        return suite

    @property
    def checkpoint_set(self) -> str:
        return getattr(self, "_checkpoint_set", "built:mini8-outcomes")

    def load_table(self) -> OutcomeTable:
        mini8 = self._mini8()
        self._mini8_suite = mini8
        self._checkpoint_set = f"{mini8.checkpoint_set}/outcomes-v{BUILD_VERSION}"
        key = content_key("mini8-outcomes", BUILD_VERSION, mini8.checkpoint_set)
        root = cached_directory(
            key,
            lambda directory: build_table(mini8, directory),
            namespace="mini8-outcomes",
            on_wait=lambda: note("waiting for another process building mini8-outcomes"),
        )
        self.root = root
        return read_table(root)

    def artifacts(self) -> list[Artifact]:
        artifacts = list(self._mini8_suite.artifacts())  # what the table was scored from
        table = self.root / "outcomes.safetensors"
        artifacts.append(
            Artifact("outcomes", "harness/mini8-outcomes", "built", sha256=file_sha256(table))
        )
        return artifacts


@torch.no_grad()
def build_table(mini8, directory: Path) -> None:
    """Score every model on every item of the validation and test splits."""
    pool = mini8.pool()
    models = [PRETRAINED, *mini8.tasks]
    device = mini8.context.device
    per_model_scores: dict[str, list[np.ndarray]] = {model: [] for model in models}
    features: list[np.ndarray] = []
    tasks: list[str] = []
    splits: list[str] = []
    ids: list[str] = []
    parameters: dict[str, int] = {}
    for model_name in progress_bar(models, desc="mini8-outcomes", enabled=mini8.context.progress):
        state = pool.base_state() if model_name == PRETRAINED else pool.expert_state(model_name)
        tower = mini8.build_model(state).to(device)
        size = sum(p.numel() for p in tower.parameters())
        for task in mini8.tasks:
            head = mini8.head(task).to(device)
            for split, router_split in (("validation", "train"), ("test", "test")):
                for index, (inputs, labels) in enumerate(
                    mini8.batches(task, split, batch_size=512)
                ):
                    out = tower(inputs.to(device))
                    right = (head(out).argmax(dim=1).cpu() == labels).numpy()
                    per_model_scores[model_name].append(right.astype(np.float32))
                    if model_name == PRETRAINED:
                        features.append(out.cpu().numpy().astype(np.float32))
                        tasks += [task] * len(labels)
                        splits += [router_split] * len(labels)
                        start = index * 512
                        ids += [f"{task}/{split}/{start + i}" for i in range(len(labels))]
            parameters[f"{model_name}/{task}"] = size + sum(p.numel() for p in head.parameters())
    scores = np.stack([np.concatenate(per_model_scores[m]) for m in models], axis=1)
    row_costs = np.array(
        [[parameters[f"{m}/{task}"] for m in models] for task in tasks], dtype=np.float64
    )
    save_file(
        {
            "scores": scores,
            "costs": row_costs,
            "features": np.concatenate(features),
        },
        str(directory / "outcomes.safetensors"),
    )
    (directory / "rows.json").write_text(
        json.dumps({"models": models, "tasks": tasks, "splits": splits, "ids": ids})
    )


def read_table(root: Path) -> OutcomeTable:
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
