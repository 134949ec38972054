"""minicross: the generated cross-capability set built on minimath, weakest-link statistics.

CrossEval (Zhong et al., arXiv 2409.19951) asks whether a model that holds two capabilities
can use them together, and finds cross-capability scores pulled toward the weaker parent
("the law of the weakest link"). Merging is where that question bites hardest: the skills
live in different experts, and a merge must hold both. This suite asks it offline, without
an LLM judge: minimath's base and experts (``math``, ``lang2``, ``kind``; built once and
shared with minimath's cache) are scored on the three parent capabilities and on three
cross capabilities that each need two of them (data.py: math in L2, kind in L2, math and
kind together). Every item has an exact answer after ``####``; the rule that scores it is
lm-eval's strict-match exact match, through the same generation path as minimath and GSM8K.

The record's ``suite.summary.weakest_link`` holds each cross capability against the min
and max of its parents on the same model, and the counts below both / between / above
both (:mod:`harness.evaluation.weakest_link`); each cross task's details hold its own row.
A cross task has no expert of its own: its individual reference is the better of its
parents' experts on it (``reference_experts``), so a normalised score above 100 means the
method beat both parents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from harness.cache import cached_directory, content_key
from harness.evaluation.weakest_link import weakest_link
from harness.registry import register_suite
from harness.splits import validation_indices
from harness.staged_build import save_stage
from tasks.text.minicross import data
from tasks.text.minimath import suite as minimath

CROSS_VERSION = 1  # bump when the generated items change meaning


@register_suite(
    "minicross",
    reference="https://arxiv.org/abs/2409.19951",
    description="minimath's skills asked two at a time (exact answers), weakest-link stats.",
)
class MiniCross(minimath.MiniMath):
    """minimath's model and experts; three parent and three cross capabilities."""

    tasks = [*data.PARENT_TASKS, *data.CROSS_TASKS]
    reference_experts: ClassVar[Mapping[str, tuple[str, ...]]] = dict(data.PARENTS)
    splits: ClassVar[Mapping[str, str]] = {
        "test": "generated test items; a cross item's L1 source is in no parent's train split",
        "validation": "a fixed 10% carve of generated train items (capped)",
    }

    def prepare(self) -> None:
        super().prepare()
        recipe = minimath.RECIPE
        key = content_key("minicross", CROSS_VERSION, self._key(), recipe.to_json())
        self.cross_root = cached_directory(key, self._build_items, namespace="minicross")
        self._scores: dict[str, float] = {}

    def _build_items(self, directory: Path) -> None:
        """Every cross task's splits as parquet, beside minimath's own (seeded: the same
        recipe always writes the same items)."""
        recipe = minimath.RECIPE
        words = json.loads((self.root / "lexicon.json").read_text())
        files: dict[str, bytes] = {}
        for task in data.CROSS_TASKS:

            def draw(split: str, count: int, task: str = task) -> list[dict[str, str]]:
                made = data.examples(
                    task, split, count, recipe.seed, words, parent_train=recipe.train_examples
                )
                return [example.to_json() for example in made]

            whole = draw("train", recipe.train_examples)
            train_index, validation_index = validation_indices(len(whole))
            rows = {
                "train": [whole[i] for i in train_index],
                "validation": [whole[i] for i in validation_index[: recipe.validation_examples]],
                "test": draw("test", recipe.test_examples),
            }
            for split, split_rows in rows.items():
                files[f"{task}/{split}.parquet"] = minimath._parquet_bytes(split_rows)
        save_stage(directory, files)

    def split_path(self, task: str, split: str) -> Path:
        if task in data.CROSS_TASKS:
            return self.cross_root / task / f"{split}.parquet"
        return super().split_path(task, split)

    def answer_regex(self, task: str) -> str:
        if task in data.CROSS_TASKS:
            return data.CROSS_TASKS[task].answer_regex
        return super().answer_regex(task)

    def evaluate(self, model, task: str, split: str = "test", *, limit: int | None = None):
        metrics = super().evaluate(model, task, split, limit=limit)
        if split == "test":
            self._scores[task] = float(metrics["exact_match"])
            if task in data.PARENTS:
                row = weakest_link(self._scores, {task: data.PARENTS[task]})
                self._details[task]["weakest_link"] = row["cross"].get(task)
        return metrics

    def evaluation_summary(self) -> Mapping[str, Any]:
        """Each cross capability against its parents on the same model, and the counts."""
        return {
            "weakest_link": weakest_link(self._scores, data.PARENTS),
            "judge": "rule: lm-eval strict-match exact match of the answer after ####",
        }
