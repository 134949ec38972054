"""routerdc: the outcome tables RouterDC trains and tests on (Chen et al., NeurIPS 2024,
https://arxiv.org/abs/2409.19886; data in the shuhao02/RouterDC repository).

Seven 7–8B LLMs (Mistral-7B-v0.1, MetaMath-Mistral-7B, Chinese-Mistral-7B, zephyr-7b-beta,
dolphin-2.6-mistral-7b, Meta-Llama-3-8B, dolphin-2.9-llama3-8b), each query's score per
model as released in ``datasets/split2_model7*/<task>.json`` (a list of
``{"question": ..., "scores": {model: score}}``). In-distribution tasks have a train file
(``split2_model7_cluster/``, else ``split2_model7/``) and a test file; the
out-of-distribution tasks (MATH pre-algebra, MBPP, C-EVAL) are test only. Scores are
read as RouterDC's evaluation does: "probability" tasks (multiple choice: MMLU, CMMLU,
ARC-C, MATH, C-EVAL) count a score above 0 as correct; "multi_attempt" tasks (GSM8K,
HumanEval, MBPP) keep the fraction of attempts that passed. Cost: the answering model's
parameters in billions (7.24 for the Mistral-7B family, 8.03 for Llama-3-8B): the
release has no cost, and RouterDC routes for quality alone.

Mirror: ``DIR/datasets/shuhao02/RouterDC/`` holding the repository's ``datasets/``
folder (``git clone https://github.com/shuhao02/RouterDC``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import register_suite
from harness.suite import Published
from harness.weights.hub import Requirement
from tasks.routing.mirrored import MirroredOutcomes, Rows

SOURCE = "https://arxiv.org/abs/2409.19886"
#: task → (train file or None, test file, scoring)
TASKS = {
    "mmlu": ("mmlu_train.json", "mmlu_test.json", "probability"),
    "gsm8k": ("gsm8k-train.json", "gsm8k-test.json", "multi_attempt"),
    "cmmlu": ("cmmlu_train.json", "cmmlu_test.json", "probability"),
    "arc_challenge": ("arc_challenge_train.json", "arc_challenge_test.json", "probability"),
    "humaneval": ("humaneval_train.json", "humaneval_test.json", "multi_attempt"),
    "math_prealgebra": (None, "MATH_prealgebra.json", "probability"),
    "mbpp": (None, "mbpp.json", "multi_attempt"),
    "ceval": (None, "ceval.json", "probability"),
}
BILLIONS = {"meta-llama/Meta-Llama-3-8B": 8.03, "cognitivecomputations/dolphin-2.9-llama3-8b": 8.03}
MISTRAL_7B = 7.24
FETCH = (
    "git clone --depth 1 https://github.com/shuhao02/RouterDC $MIRROR/datasets/shuhao02/RouterDC"
)


@register_suite(
    "routerdc",
    reference=SOURCE,
    description="RouterDC's 7 LLMs × MMLU/GSM8K/CMMLU/ARC-C/HumanEval (+3 OOD tasks), "
    "per-query scores from a mirror.",
)
class RouterDCOutcomes(MirroredOutcomes):
    requirement = Requirement("shuhao02/RouterDC", "datasets", fetch=FETCH)
    tasks = list(TASKS)
    cost_unit = "billion parameters per query"
    splits = {
        "train": "the release's train files (in-distribution tasks), minus a 10% carve",
        "validation": "a fixed 10% of each task's train rows",
        "test": "the release's test files; OOD tasks (math_prealgebra, mbpp, ceval) are test only",
    }
    published = [
        Published(
            method="routerdc",
            average=float(np.mean([61.07, 70.32, 58.52, 51.02])),
            source=SOURCE,
            checkpoint_set="shuhao02/RouterDC",
            per_task={"mmlu": 61.07, "gsm8k": 70.32, "arc_challenge": 58.52, "humaneval": 51.02},
            note="mean of the four in-distribution tasks listed (CMMLU not confirmed here); "
            "mdeberta-v3-base encoder fine-tuned",
        )
    ]

    def read(self, root: Path) -> Rows:
        data = root / "datasets"
        models: tuple[str, ...] | None = None
        scores, tasks, splits, texts, ids = [], [], [], [], []
        for task, (train_file, test_file, scoring) in TASKS.items():
            for split, name in (("train", train_file), ("test", test_file)):
                if name is None:
                    continue
                path = _find(data, name)
                for index, item in enumerate(json.loads(path.read_text())):
                    if models is None:
                        models = tuple(item["scores"])
                    if tuple(item["scores"]) != models:
                        raise HarnessError(f"{path}: item {index} scores other models")
                    values = np.array([float(item["scores"][m]) for m in models])
                    if scoring == "probability":
                        values = (values > 0).astype(float)
                    scores.append(values)
                    tasks.append(task)
                    splits.append(split)
                    texts.append(str(item["question"]))
                    ids.append(f"{task}/{split}/{index}")
        assert models is not None
        costs = np.array([BILLIONS.get(m, MISTRAL_7B) for m in models])
        return Rows(
            models=models,
            scores=np.clip(np.array(scores), 0.0, 1.0),
            costs=np.broadcast_to(costs, (len(scores), len(models))).copy(),
            tasks=tasks,
            splits=splits,
            texts=texts,
            ids=ids,
        )


def _find(data: Path, name: str) -> Path:
    for folder in ("split2_model7_cluster", "split2_model7"):
        if (data / folder / name).is_file():
            return data / folder / name
    raise HarnessError(
        f"the RouterDC release under {data} lacks {name} (in split2_model7_cluster/ or "
        f"split2_model7/); clone the full repository: {FETCH}"
    )
