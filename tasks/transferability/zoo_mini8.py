"""zoo-mini8: rank a zoo of mini8 towers for each mini8 task, against real fine-tuning.

The zoo (14 towers of one architecture, all built offline): a randomly initialised
tower; towers pretrained with 50 and 100 steps of mini8's pretraining recipe (shorter
runs of the same recipe, standing in for intermediate checkpoints, which the mini8 build
does not keep); mini8's pretrained tower (200 steps); its eight experts; and three merges
of the experts made by the harness's own methods with their paper defaults (task
arithmetic, TIES). Targets: the eight mini8 tasks. A target's own expert is left out of
its zoo (it was fine-tuned on the target's training split, which makes it the answer
rather than a candidate), so 13 sources are ranked per target.

What an estimator sees per (source, target): the tower's pooled features on the first
1,000 examples of the target's training split, their labels, and the source head's
probabilities — a softmax over the classes of the *other seven* tasks' frozen mini8
heads (the target's own head was fit on its training labels, so it is left out, as an
ImageNet model's 1,000-way head knows nothing of its target's classes). Source facts:
its mean validation accuracy on the other seven tasks with the frozen heads (a
target-blind "upstream accuracy") and its parameter count.

Ground truth: every (source, target) pair fine-tuned end to end with a new head over a
2 × 2 learning-rate × weight-decay grid, 40 AdamW steps of 64 with the new head at 10×
the tower's learning rate (``harness.transferability.finetune``), best on
the target's validation split, scored on its test split. Everything is cached under the
harness cache and the fine-tuning is resumable pair by pair.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from harness.cache import cached_directory, content_key, file_sha256, write_json_atomic
from harness.keyed_log import KeyedLog
from harness.method import MethodContext
from harness.progress import note, progress_bar
from harness.registry import METHODS, register_suite
from harness.staged_build import build_stage, run_stages, save_stage
from harness.suite import Artifact, SuiteContext
from harness.transferability.finetune import (
    FinetunableZoo,
    FinetunePair,
    FinetuneProtocol,
    accuracy,
    finetune_pairs,
)
from harness.transferability.inputs import TargetInputs
from harness.transferability.zoo import GroundTruth
from tasks.vision.mini8 import build, data
from tasks.vision.mini8.suite import RECIPE, Mini8

BUILD_VERSION = 1
PROTOCOL = FinetuneProtocol(steps=40)
ESTIMATION_EXAMPLES = 1000
SHORT_PRETRAINING = (50, 100)
MERGES = ("task_arithmetic", "ties")
SOURCES = (
    "random_init",
    *(f"pretrain_{steps}" for steps in SHORT_PRETRAINING),
    "pretrained",
    *(f"expert_{task}" for task in data.TASKS),
    *(f"merge_{name}" for name in MERGES),
)


@register_suite(
    "zoo-mini8",
    reference="https://arxiv.org/abs/2207.03036",
    description="Rank 13 offline mini8 towers per mini8 task; ground truth by CPU fine-tuning.",
)
class ZooMini8(FinetunableZoo):
    """Transferability on mini8: pretrained, short-pretrained, random, expert and merged
    towers ranked for each mini8 task against their real fine-tuned accuracy."""

    tasks = list(data.TASKS)

    # ------------------------------------------------------------------ building
    def _mini8(self) -> Mini8:
        if not hasattr(self, "_mini8_suite"):
            context = SuiteContext(
                cache_dir=self.context.cache_dir, progress=self.context.progress, seed=0
            )
            self._mini8_suite = Mini8(context)
            self._mini8_suite.prepare()
        return self._mini8_suite

    def _key(self) -> str:
        mini8 = self._mini8()
        return content_key(
            "zoo-mini8",
            BUILD_VERSION,
            mini8.checkpoint_set,
            PROTOCOL.to_json(),
            ESTIMATION_EXAMPLES,
            SHORT_PRETRAINING,
            MERGES,
        )

    @property
    def checkpoint_set(self) -> str:
        return f"built:zoo-mini8-{self._key()[:8]}"

    def prepare(self) -> None:
        self.root = cached_directory(
            self._key(),
            self._build,
            namespace="zoo-mini8",
            resumable=True,
            on_wait=lambda: note("waiting for another process that is building zoo-mini8"),
        )
        self._truth = json.loads((self.root / "truth.json").read_text())
        self._facts = json.loads((self.root / "facts.json").read_text())

    def _build(self, directory: Path) -> None:
        stages = ["sources", "inputs", "finetune"]
        done = {
            "sources": lambda: all(
                (directory / "sources" / f"{s}.safetensors").is_file() for s in SOURCES
            ),
            "inputs": lambda: (directory / "facts.json").is_file(),
            "finetune": lambda: (directory / "truth.json").is_file(),
        }
        run_stages(
            "zoo-mini8",
            directory,
            stages,
            lambda name: done[name](),
            lambda: self._build_stages(directory),
        )

    def _build_stages(self, directory: Path) -> None:
        mini8 = self._mini8()
        expected = [directory / "sources" / f"{s}.safetensors" for s in SOURCES]
        build_stage(
            "zoo-mini8", directory, expected, "zoo (14 towers)", 0, lambda: self._sources(mini8)
        )
        if not (directory / "facts.json").is_file():
            self._extract_inputs(directory, mini8)
        if not (directory / "truth.json").is_file():
            self._finetune(directory, mini8)

    def _sources(self, mini8: Mini8) -> dict[str, dict[str, torch.Tensor]]:
        pool = mini8.pool()
        recipe = RECIPE
        train = {
            task: (
                mini8._data[f"{task}/train/images"],
                mini8._data[f"{task}/train/labels"],
            )
            for task in data.TASKS
        }
        states: dict[str, dict[str, torch.Tensor]] = {
            "random_init": build.new_tower(recipe).state_dict(),
            "pretrained": pool.base_state(),
        }
        for steps in SHORT_PRETRAINING:
            shorter = build.Recipe(**{**recipe.to_json(), "pretrain_steps": steps})
            tower = build.pretrain(train, shorter, progress=self.context.progress)
            states[f"pretrain_{steps}"] = tower.state_dict()
        for task in data.TASKS:
            states[f"expert_{task}"] = pool.expert_state(task)
        context = MethodContext(mini8, pool, torch.device("cpu"), seed=0, progress=False)
        for name in MERGES:
            entry = METHODS.get(name)
            states[f"merge_{name}"] = dict(entry.obj(context, **entry.defaults).state)
        return {
            f"sources/{name}.safetensors": {
                key: tensor.detach().float().contiguous() for key, tensor in state.items()
            }
            for name, state in states.items()
        }

    def _tower(self, directory: Path, source: str) -> torch.nn.Module:
        state = load_file(str(directory / "sources" / f"{source}.safetensors"))
        return self._mini8().build_model(state)

    def _extract_inputs(self, directory: Path, mini8: Mini8) -> None:
        """Features and source-head probabilities once per (source, target); source facts."""
        facts: dict[str, dict[str, float]] = {}
        for source in progress_bar(list(SOURCES), desc="zoo-mini8 features"):
            tower = self._tower(directory, source)
            parameters = float(sum(p.numel() for p in tower.parameters()))
            features = {}
            validation = {}
            with torch.no_grad():
                for task in data.TASKS:
                    images = mini8._data[f"{task}/train/images"][:ESTIMATION_EXAMPLES]
                    features[task] = build.features(tower, images)
                    split = (
                        build.normalise(mini8._data[f"{task}/validation/images"]),
                        mini8._data[f"{task}/validation/labels"],
                    )
                    validation[task] = accuracy(tower, mini8.head(task), split)
                files = {}
                for target in data.TASKS:
                    others = [task for task in data.TASKS if task != target]
                    logits = torch.cat([mini8.head(t)(features[target]) for t in others], dim=1)
                    files[f"inputs/{source}/{target}.safetensors"] = {
                        "features": features[target].contiguous(),
                        "labels": mini8._data[f"{target}/train/labels"][
                            :ESTIMATION_EXAMPLES
                        ].contiguous(),
                        "source_probs": torch.softmax(logits.double(), dim=1).contiguous(),
                    }
            save_stage(directory, files)
            facts[source] = {
                "parameters": parameters,
                **{f"validation/{t}": validation[t] for t in data.TASKS},
            }
        write_json_atomic(directory / "facts.json", facts)

    def _pairs(self, directory: Path, targets: list[str]) -> list[FinetunePair]:
        """Each target's 13 sources: the tower from ``directory``, the target's splits."""
        mini8 = self._mini8()

        def splits(target: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
            return {
                split: (
                    build.normalise(mini8._data[f"{target}/{split}/images"]),
                    mini8._data[f"{target}/{split}/labels"],
                )
                for split in ("train", "validation", "test")
            }

        return [
            FinetunePair(
                source,
                target,
                lambda source=source: self._tower(directory, source),
                RECIPE.hidden_size,
                int(mini8._data[f"{target}/train/labels"].max()) + 1,
                lambda target=target: splits(target),
            )
            for target in targets
            for source in _sources_for(target)
        ]

    def _finetune(self, directory: Path, mini8: Mini8) -> None:
        log = KeyedLog(directory / "finetune.jsonl")
        found = finetune_pairs(
            self._pairs(directory, list(data.TASKS)),
            PROTOCOL,
            log,
            progress=self.context.progress,
            desc="zoo-mini8 fine-tuning",
        )
        truth = {
            target: {
                source: {"validation": r.validation, "test": r.test, "config": dict(r.config)}
                for source, r in per_source.items()
            }
            for target, per_source in found.items()
        }
        write_json_atomic(
            directory / "truth.json", {"protocol": PROTOCOL.to_json(), "truth": truth}
        )

    # ------------------------------------------------------------------ fine-tuning
    def finetune_protocol(self) -> FinetuneProtocol:
        return PROTOCOL

    def finetune_pairs(self) -> list[FinetunePair]:
        return self._pairs(self.root, list(self.tasks))

    def finetune_log(self) -> Path:
        return self.root / "finetune.jsonl"

    # ------------------------------------------------------------------ contract
    def sources(self, target: str) -> list[str]:
        return _sources_for(target)

    def target_inputs(self, source: str, target: str) -> TargetInputs:
        facts = tuple(self.source_facts(source, target).items())
        return _load_inputs(str(self.root), source, target, facts)

    def source_facts(self, source: str, target: str) -> dict[str, float]:
        """Mean validation accuracy on the other seven tasks' frozen heads; size."""
        facts = self._facts[source]
        others = [facts[f"validation/{t}"] for t in data.TASKS if t != target]
        return {"accuracy": float(np.mean(others)), "parameters": facts["parameters"]}

    def ground_truth(self, target: str) -> Mapping[str, GroundTruth]:
        return {
            source: GroundTruth(entry["validation"], entry["test"], entry["config"])
            for source, entry in self._truth["truth"][target].items()
        }

    def protocol(self) -> dict[str, object]:
        """How the ground truth was made (recorded in the suite's summary)."""
        return {
            **self._truth["protocol"],
            "estimation_examples": ESTIMATION_EXAMPLES,
            "own_expert_left_out": True,
            "sources": list(SOURCES),
        }

    def evaluation_summary(self) -> Mapping[str, object]:
        return {"ground_truth_protocol": self.protocol()}

    def artifacts(self) -> list[Artifact]:
        built = [
            Artifact(f"source:{s}", f"harness/zoo-mini8-{s}", "built", sha256=self._sha(s))
            for s in SOURCES
        ]
        return [*self._mini8().artifacts(), *built]

    def _sha(self, source: str) -> str:
        return file_sha256(self.root / "sources" / f"{source}.safetensors")


def _sources_for(target: str) -> list[str]:
    return [source for source in SOURCES if source != f"expert_{target}"]


@cache
def _load_inputs(
    root: str, source: str, target: str, facts: tuple[tuple[str, float], ...]
) -> TargetInputs:
    tensors = load_file(str(Path(root) / "inputs" / source / f"{target}.safetensors"))
    return TargetInputs(
        tensors["features"].double().numpy(),
        tensors["labels"].numpy(),
        tensors["source_probs"].numpy(),
        dict(facts),
    )
