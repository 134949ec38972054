"""zoo-clip: the harness's CLIP experts and merges as a zoo, each CLIP task as a target.

The zoo, per target: the pretrained CLIP vision tower, the fine-tuned experts of the
*other* tasks of the checkpoint set (vit8 by default; a target's own expert was trained on
its training split, which makes it the answer rather than a candidate), and merges of all
experts made by the harness's own methods with their paper defaults (task arithmetic,
TIES). Weights and data come through the CLIP suites' loading code (hub or ``--mirror``).

What an estimator sees per (source, target): the tower's image embeddings of the first
``examples`` images of the target's training split (the 90% left after the fixed
validation carve), their labels, and as the source head the softmax over the classes of
the *other* tasks' zero-shot heads. Source facts: the tower's mean zero-shot validation
accuracy on the other tasks (``facts_examples`` images each) and its size. The merges are
built once; features and facts are extracted when first needed and cached per pair.

Ground truth is computed by the harness, not shipped: ``harness transfer finetune --tasks
zoo-clip`` (resumable, meant for a GPU) fine-tunes every pair end to end with a new linear
head over the learning-rate × weight-decay grid of ``harness.transferability.finetune``
(on at most ``finetune_examples`` training images and ``eval_examples`` validation and
test images per target), best on validation, scored on test. Until it has run, estimator
runs on zoo-clip stop with a one-line error saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from harness.cache import cache_dir, cached_directory, content_key, write_json_atomic
from harness.errors import HarnessError
from harness.keyed_log import KeyedLog
from harness.method import MethodContext
from harness.progress import note
from harness.registry import METHODS, SUITES, Param, register_suite
from harness.staged_build import save_stage
from harness.suite import Artifact, SuiteContext
from harness.transferability.finetune import FinetunableZoo, FinetunePair, FinetuneProtocol
from harness.transferability.inputs import TargetInputs
from harness.transferability.zoo import GroundTruth
from tasks.vision.clip.datasets import VIT8
from tasks.vision.clip.suites import PARAMS as CLIP_PARAMS
from tasks.vision.clip.suites import ClipVisionSuite

BUILD_VERSION = 1
MERGES = ("task_arithmetic", "ties")
SETS = ("vit8", "vit14", "vit20")

PARAMS = {
    **CLIP_PARAMS,
    "set": Param(
        "vit8", "the CLIP checkpoint set whose experts and tasks make the zoo", choices=SETS
    ),  # fmt: skip
    "examples": Param(1000, "training images per target the estimators see", low=2),
    "facts_examples": Param(500, "validation images per task for the upstream accuracy", low=1),
    "finetune_examples": Param(2000, "training images per target for fine-tuning", low=2),
    "eval_examples": Param(2000, "validation and test images per target when fine-tuning", low=1),
    "steps": Param(200, "fine-tuning steps per grid point", low=1),
    "batch_size": Param(32, "fine-tuning batch size", low=1),
}


def protocol_for(options: Mapping[str, object]) -> FinetuneProtocol:
    """A CLIP-scale grid: the task-vectors recipe's learning rate (1e-5) and ten times it,
    with and without weight decay (0.1 as in Ilharco et al.)."""
    return FinetuneProtocol(
        learning_rates=(1e-5, 1e-4),
        weight_decays=(0.0, 0.1),
        steps=int(options["steps"]),  # type: ignore[arg-type]
        batch_size=int(options["batch_size"]),  # type: ignore[arg-type]
    )


@register_suite(
    "zoo-clip",
    params=PARAMS,
    reference="https://arxiv.org/abs/2207.03036",
    description="Rank CLIP experts and merges per CLIP task; ground truth by harness fine-tuning.",
)
class ZooClip(FinetunableZoo):
    """The CLIP checkpoint set's pretrained tower, experts and merges, ranked for each of
    its tasks against the harness's own fine-tuning."""

    tasks = list(VIT8)  # the default set's; another --suite-set set=... replaces them

    def __init__(self, context: SuiteContext) -> None:
        super().__init__(context)
        options = {name: param.default for name, param in PARAMS.items()}
        options.update(context.options)
        self.options = options
        self.tasks = list(SUITES.get(str(options["set"])).obj.tasks)

    # ------------------------------------------------------------------ the CLIP suite
    @cached_property
    def clip(self) -> ClipVisionSuite:
        """The CLIP suite of the set, over all its tasks (every expert is a source)."""
        clip_options = {k: v for k, v in self.options.items() if k in CLIP_PARAMS}
        suite = SUITES.get(str(self.options["set"])).obj(
            SuiteContext(
                mirror=self.context.mirror, cache_dir=self.context.cache_dir,
                device=self.context.device, progress=self.context.progress,
                options=clip_options,
            )
        )  # fmt: skip
        suite.prepare()
        return suite

    @property
    def checkpoint_set(self) -> str:
        return f"zoo-clip:{self.options['set']}:{self.clip.checkpoint_set}"

    def all_sources(self) -> list[str]:
        experts = [f"expert_{task}" for task in self.clip.tasks]
        return ["pretrained", *experts, *(f"merge_{name}" for name in MERGES)]

    def sources(self, target: str) -> list[str]:
        return [s for s in self.all_sources() if s != f"expert_{target}"]

    def _key(self) -> str:
        identities = [artifact.to_json() for artifact in self.clip.artifacts()]
        examples = (self.options["examples"], self.options["facts_examples"])
        return content_key("zoo-clip", BUILD_VERSION, self.checkpoint_set, identities,
                           MERGES, examples)  # fmt: skip

    # ------------------------------------------------------------------ building
    def prepare(self) -> None:
        """The merges are built once (cached); features and facts are extracted per
        (source, target) when first asked for, for the selected targets only."""
        self.root = cached_directory(
            self._key(), self._build_merges, namespace="zoo-clip", resumable=True,
            on_wait=lambda: note("waiting for another process that is building zoo-clip"),
        )  # fmt: skip
        self._towers: dict[str, torch.nn.Module] = {}

    def _build_merges(self, directory: Path) -> None:
        merges = [directory / "sources" / f"merge_{name}.safetensors" for name in MERGES]
        context = MethodContext(self.clip, self.clip.pool(), self.context.device, seed=0,
                                progress=self.context.progress)  # fmt: skip
        for name, path in zip(MERGES, merges, strict=True):
            if path.is_file():  # resumed: finished by an interrupted build
                continue
            entry = METHODS.get(name)
            state = entry.obj(context, **entry.defaults).state
            save_stage(directory, {
                f"sources/{path.name}": {k: v.detach().cpu().contiguous() for k, v in state.items()}
            })  # fmt: skip

    def _state(self, directory: Path, source: str) -> dict[str, torch.Tensor]:
        pool = self.clip.pool()
        if source == "pretrained":
            return pool.base_state()
        if source.startswith("expert_"):
            return pool.expert_state(source.removeprefix("expert_"))
        return load_file(str(directory / "sources" / f"{source}.safetensors"))

    def _tower(self, directory: Path, source: str) -> torch.nn.Module:
        return self.clip.build_model(self._state(directory, source)).float()

    def _frozen_tower(self, source: str) -> torch.nn.Module:
        """The source for feature extraction, kept for the next target (one at a time)."""
        if source not in self._towers:
            self._towers.clear()
            tower = self._tower(self.root, source).to(self.context.device).eval()
            self._towers[source] = tower
        return self._towers[source]

    def _inputs_dir(self, source: str) -> Path:
        return self.root / "inputs" / source

    def _extract(self, source: str, target: str) -> Path:
        """Features of ``source`` on ``target``'s first training images and the softmax
        over the other tasks' zero-shot heads, cached once."""
        path = self._inputs_dir(source) / f"{target}.safetensors"
        if path.is_file():
            return path
        device = self.context.device
        tower = self._frozen_tower(source)
        limit = int(self.options["examples"])
        with torch.no_grad():
            parts = [
                (tower(images.to(device)).float().cpu(), labels)
                for images, labels in self.clip.batches(
                    target, "train", batch_size=64, limit=limit
                )  # fmt: skip
            ]
            features = torch.cat([f for f, _ in parts])
            others = [t for t in self.clip.tasks if t != target]
            logits = torch.cat([self.clip.head(t)(features).float() for t in others], dim=1)
        save_stage(self.root, {
            f"inputs/{source}/{target}.safetensors": {
                "features": features.contiguous(),
                "labels": torch.cat([y for _, y in parts]).long().contiguous(),
                "source_probs": torch.softmax(logits.double(), dim=1).contiguous(),
            }
        })  # fmt: skip
        return path

    def _facts(self, source: str) -> dict[str, float]:
        """Zero-shot validation accuracy on every task of the set; parameter count."""
        path = self._inputs_dir(source) / "facts.json"
        if not path.is_file():
            tower = self._frozen_tower(source)
            limit = int(self.options["facts_examples"])
            facts = {
                "parameters": float(sum(p.numel() for p in tower.parameters())),
                **{
                    f"validation/{task}": float(
                        self.clip.evaluate(tower, task, "validation", limit=limit)["accuracy"]
                    )
                    for task in self.clip.tasks
                },
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, facts)
        return json.loads(path.read_text())

    # ------------------------------------------------------------------ fine-tuning
    def finetune_protocol(self) -> FinetuneProtocol:
        return protocol_for(self.options)

    def finetune_log(self) -> Path:
        key = content_key(
            self._key(), self.finetune_protocol().to_json(),
            self.options["finetune_examples"], self.options["eval_examples"],
        )  # fmt: skip
        return (
            Path(self.context.cache_dir or cache_dir())
            / "zoo-clip-finetune"
            / key
            / ("finetune.jsonl")
        )

    def _splits(self, target: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        limits = {
            "train": int(self.options["finetune_examples"]),
            "validation": int(self.options["eval_examples"]),
            "test": int(self.options["eval_examples"]),
        }
        splits = {}
        for split, limit in limits.items():
            parts = list(self.clip.batches(target, split, batch_size=256, limit=limit))
            splits[split] = (
                torch.cat([images for images, _ in parts]),
                torch.cat([labels for _, labels in parts]).long(),
            )
        return splits

    def finetune_pairs(self) -> list[FinetunePair]:
        from tasks.vision.clip.datasets import classnames

        return [
            FinetunePair(
                source,
                target,
                lambda source=source: self._tower(self.root, source),
                int(self.clip.head(target).weight.shape[1]),
                len(classnames(target)),
                lambda target=target: self._splits(target),
            )  # fmt: skip
            for target in self.tasks
            for source in self.sources(target)
        ]

    # ------------------------------------------------------------------ contract
    def target_inputs(self, source: str, target: str) -> TargetInputs:
        if not (self._inputs_dir(source) / f"{target}.safetensors").is_file():
            for other in self.tasks:  # while this tower is loaded: every selected target
                self._extract(source, other)
        tensors = load_file(str(self._extract(source, target)))
        return TargetInputs(
            tensors["features"].double().numpy(),
            tensors["labels"].numpy(),
            tensors["source_probs"].numpy(),
            self.source_facts(source, target),
        )

    def source_facts(self, source: str, target: str) -> dict[str, float]:
        """Mean zero-shot validation accuracy on the other tasks; size."""
        facts = self._facts(source)
        others = [facts[f"validation/{t}"] for t in self.clip.tasks if t != target]
        return {"accuracy": float(np.mean(others)), "parameters": facts["parameters"]}

    def ground_truth(self, target: str) -> Mapping[str, GroundTruth]:
        log = KeyedLog(self.finetune_log())
        missing = [s for s in self.sources(target) if f"{s}/{target}" not in log]
        if missing:
            raise HarnessError(
                f"zoo-clip has no fine-tuned ground truth for {len(missing)} source(s) on "
                f"{target!r} yet; run `harness transfer finetune --tasks zoo-clip` with the "
                "same --suite-set options first (resumable; a GPU helps)"
            )
        truth = {}
        for source in self.sources(target):
            entry = log.get(f"{source}/{target}")
            assert entry is not None
            truth[source] = GroundTruth(entry["validation"], entry["test"], entry["config"])
        return truth

    def evaluation_summary(self) -> Mapping[str, object]:
        return {
            "ground_truth_protocol": {
                **self.finetune_protocol().to_json(),
                "ground_truth": "computed (harness transfer finetune)",
                "finetune_examples": self.options["finetune_examples"],
                "eval_examples": self.options["eval_examples"],
                "estimation_examples": self.options["examples"],
                "own_expert_left_out": True,
                "sources": self.all_sources(),
            }
        }

    def artifacts(self) -> list[Artifact]:
        return self.clip.artifacts()
