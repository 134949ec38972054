"""An outcome table from a classification suite's own experts: every model of the pool
(the pretrained model and each expert) scored item by item on every task.

Per item and model the score is 1 when the task's frozen head puts the true class first.
A text suite that can name each item's text (``item_texts(task, split)``, in the order of
its ``batches``) gives the table its query texts, for routers that read text.
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
from harness.suite import ClassificationSuite, Suite

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
    texts: list[str] | None = [] if hasattr(suite, "item_texts") else None
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
                if model == PRETRAINED and texts is not None:
                    texts += suite.item_texts(task, split)
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
    if texts is not None and len(texts) != len(ids):
        raise RuntimeError(f"{suite.name}: item_texts gave {len(texts)} texts for {len(ids)} items")
    rows = {"models": models, "tasks": tasks, "splits": table_splits, "ids": ids}
    (directory / "rows.json").write_text(json.dumps({**rows, "texts": texts}))


def read_table(root: Path) -> OutcomeTable:
    """The table :func:`score_experts` wrote."""
    tensors = load_file(str(root / "outcomes.safetensors"))
    rows = json.loads((root / "rows.json").read_text())
    texts = rows.get("texts")
    return OutcomeTable(
        models=tuple(rows["models"]),
        scores=tensors["scores"].astype(np.float64),
        costs=tensors["costs"],
        tasks=np.array(rows["tasks"], dtype=object),
        splits=np.array(rows["splits"], dtype=object),
        features=tensors["features"],
        texts=None if texts is None else tuple(texts),
        ids=tuple(rows["ids"]),
    )


@torch.no_grad()
def score_lm_experts(suite: Suite, splits: Mapping[str, str], directory: Path) -> None:
    """The same table for a generative LM suite (minimath) scored through lm-eval: each
    model generates for every item of every task's split with the suite's own
    ``evaluate`` (greedy, the suite's filters), and an item scores 1 when the ranked
    metric (strict-match exact match) is 1 in lm-eval's per-sample log
    (``evaluation_details(task)["samples_log"]``). What a router reads of an item: the
    pretrained LM's last hidden state averaged over the tokens of the prompt lm-eval gave
    it (never the answer). Cost: the model's parameters per query."""
    pool = suite.pool()
    models = [PRETRAINED, *pool.tasks]
    device = suite.context.device
    columns: dict[str, list[np.ndarray]] = {model: [] for model in models}
    prompts: list[str] = []
    tasks: list[str] = []
    table_splits: list[str] = []
    ids: list[str] = []
    sizes: dict[str, int] = {}
    for model in progress_bar(
        models, desc=f"{suite.name} outcomes", enabled=suite.context.progress
    ):
        state = pool.base_state() if model == PRETRAINED else pool.expert_state(model)
        network = suite.build_model(state).to(device)
        sizes[model] = sum(p.numel() for p in network.parameters())
        for task in suite.tasks:
            for split, table_split in splits.items():
                suite.evaluate(network, task, split)
                samples = _samples(suite, task)
                columns[model].append(np.array([s["score"] for s in samples], np.float32))
                if model == PRETRAINED:
                    prompts += [s["prompt"] for s in samples]
                    tasks += [task] * len(samples)
                    table_splits += [table_split] * len(samples)
                    ids += [f"{task}/{split}/{s['doc_id']}" for s in samples]
        if model == PRETRAINED:
            features = prompt_features(network, suite.tokenizer(), prompts, device)
        del network
    scores = np.stack([np.concatenate(columns[m]) for m in models], axis=1)
    if scores.shape[0] != len(ids):
        raise RuntimeError(f"{suite.name}: the models were scored on different items")
    costs = np.tile(np.array([sizes[m] for m in models], dtype=np.float64), (len(ids), 1))
    save_file(
        {"scores": scores, "costs": costs, "features": features},
        str(directory / "outcomes.safetensors"),
    )
    (directory / "rows.json").write_text(
        json.dumps({"models": models, "tasks": tasks, "splits": table_splits, "ids": ids})
    )


def _samples(suite: Suite, task: str) -> list[dict[str, object]]:
    """The last evaluation's per-item outcome, in document order: doc_id, the prompt lm-eval
    gave the model and the ranked metric's 0/1 under its filter."""
    details = suite.evaluation_details(task)
    metric, _, kept = str(details["ranked_by"]).partition(",")
    rows = []
    with open(details["samples_log"]) as lines:
        for line in lines:
            sample = json.loads(line)
            if kept and sample.get("filter") != kept:
                continue
            rows.append(
                {
                    "doc_id": int(sample["doc_id"]),
                    "prompt": sample["arguments"][0][0],
                    "score": float(sample[metric]),
                }
            )
    rows.sort(key=lambda row: row["doc_id"])
    if [row["doc_id"] for row in rows] != list(range(len(rows))):
        raise RuntimeError(f"{details['samples_log']}: expected one sample per document")
    return rows


@torch.no_grad()
def prompt_features(
    model: torch.nn.Module, tokenizer: object, prompts: list[str], device: torch.device
) -> np.ndarray:
    """[N, hidden]: a causal LM's last hidden state averaged over each prompt's tokens."""
    rows = []
    for prompt in progress_bar(prompts, desc="prompt features", enabled=False):
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=True)["input_ids"]])
        out = model(input_ids=ids.to(device), output_hidden_states=True)
        rows.append(out.hidden_states[-1][0].float().mean(dim=0).cpu().numpy())
    return np.stack(rows).astype(np.float32)
