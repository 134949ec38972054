"""glue-gpt2: FusionBench's GLUE suite of GPT-2 classifiers.

Seven GLUE tasks (cola, mnli, mrpc, qnli, qqp, rte, sst2); the base is ``gpt2`` and each
task's expert is ``tanganke/gpt2_<task>``, a GPT2ForSequenceClassification fine-tuned
from it (lr 5e-5, 3 epochs). Only the transformer backbone is merged; every task is
scored with its own expert's ``score`` head on the merged backbone, at the last non-pad
token, by accuracy (CoLA too, not Matthews correlation) on GLUE's validation split
(validation_matched for mnli). Hyperparameters are chosen on a fixed held-out 10% of
GLUE's train split, never on the scored split (``splits``, recorded).

Tokenisation is FusionBench's (``fusion_bench/dataset/gpt2_glue.py`` with its
``load_gpt2_tokenizer``): GPT-2's tokenizer with ``<|endoftext|>`` as padding and
``model_max_length`` 512, sentence pairs passed as the tokenizer's pair (GPT-2 simply
concatenates the two token sequences), ``truncation=True`` (longest first). FusionBench
then pads every example to 512 tokens and scores batches of 8 in float32; here token ids
are cached once per split and scored in length-bucketed batches under bf16 autocast on
CUDA, which gives the same per-example outputs (``harness bench eval --tasks glue-gpt2``
measures both and checks that their predictions agree).

Options (``--suite-set key=value``): ``dtype`` auto | bf16 | fp32 (auto: bf16 on CUDA,
fp32 on CPU); ``eval_batch_size`` (0: 256 on CUDA, 32 on CPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch

from harness.evaluation.fast import resolve_dtype
from harness.evaluation.text import (
    TokenizedSplit,
    attention_mask,
    bucketed_batches,
    cached_tokenized,
    predict,
    tokenize_texts,
)
from harness.progress import note
from harness.registry import Param, register_suite
from harness.splits import VALIDATION_FRACTION, VALIDATION_SEED
from harness.suite import Artifact, ClassificationSuite, SuiteContext
from harness.weights.hub import Requirement, ResolvedArtifact, resolve, resolve_all
from harness.weights.pool import ExpertPool
from tasks.text.glue import data as glue
from tasks.text.glue import gpt2_models as models
from tasks.text.glue.gpt2_published import CHECKPOINT_SET, PUBLISHED_GLUE_GPT2

TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2"]
REFERENCE = "https://tanganke.github.io/fusion_bench/modelpool/gpt2_classification/"
TOKENS_RECIPE = "fusionbench-gpt2-glue-1"  # tokenizer(text[, text_pair], truncation=True)
EVAL_MAX_TOKENS = 1 << 16  # padded tokens per evaluation batch (bounds long batches)

PARAMS = {
    "dtype": Param(
        "auto",
        "evaluation precision (auto: bf16 on CUDA, fp32 on CPU)",
        choices=("auto", "bf16", "fp32"),
    ),
    "eval_batch_size": Param(0, "evaluation batch size (0: 256 on CUDA, 32 on CPU)", low=0),
}


@register_suite("glue-gpt2", params=PARAMS, reference=REFERENCE)
class GlueGpt2(ClassificationSuite):
    """GLUE with GPT-2 (FusionBench): 7 tasks, merged backbone + each expert's score head."""

    tasks = TASKS
    metric = "accuracy"
    published: ClassVar = PUBLISHED_GLUE_GPT2
    splits: ClassVar = {
        "test": "GLUE's validation split (validation_matched for mnli): the scored split",
        "validation": (
            f"a fixed {VALIDATION_FRACTION:.0%} of GLUE's train split (seed "
            f"{VALIDATION_SEED}), held out: hyperparameters are chosen here"
        ),
        "train": "the other 90% of GLUE's train split (data-based methods read it)",
    }

    def __init__(self, context: SuiteContext) -> None:
        super().__init__(context)
        self.tasks = list(type(self).tasks)
        self.options = {name: param.default for name, param in PARAMS.items()}
        self.options.update(context.options)
        self._base: ResolvedArtifact | None = None
        self._experts: dict[str, ResolvedArtifact] = {}
        self._dataset: ResolvedArtifact | None = None
        self._heads: dict[str, torch.nn.Linear] = {}
        self._tokens: dict[tuple[str, str], TokenizedSplit] = {}
        self._tokenizer: Any = None
        self._pad_id: int | None = None
        self._config: Any = None
        self._template: torch.nn.Module | None = None

    # ------------------------------------------------------------------ identity
    @property
    def checkpoint_set(self) -> str:
        return CHECKPOINT_SET

    @property
    def base(self) -> ResolvedArtifact:
        if self._base is None:
            raise RuntimeError("call prepare() first")
        return self._base

    @property
    def pad_id(self) -> int:
        """The id of ``<|endoftext|>``, GPT-2's padding (read from the tokenizer)."""
        if self._pad_id is None:
            raise RuntimeError("call prepare() first")
        return self._pad_id

    @property
    def max_length(self) -> int:
        return models.MAX_LENGTH

    def expert_id(self, task: str) -> str:
        return models.EXPERTS.format(task=task)

    # ------------------------------------------------------------------ prepare
    def required_artifacts(self) -> list[Requirement]:
        """Base, one expert per task and the GLUE dataset: checked together up front."""
        base = Requirement(models.BASE, "models", models.MODEL_FILES)
        experts = [
            Requirement(self.expert_id(task), "models", models.MODEL_FILES) for task in self.tasks
        ]
        dataset = Requirement(glue.DATASET, "datasets", glue.allow_patterns(self.tasks))
        return [base, *experts, dataset]

    def prepare(self) -> None:
        from transformers import GPT2Config

        needed = self.required_artifacts()
        resolved = resolve_all(needed, mirror=self.context.mirror, needed_by=self.name)
        self._base, self._dataset = _with_weights(resolved[0]), resolved[-1]
        self._experts = {task: _with_weights(r) for task, r in zip(self.tasks, resolved[1:-1])}
        glue.check_files(self._dataset.path, self.tasks, ("test", "train"))
        self._tokenizer, self._pad_id = models.load_tokenizer(self.base)
        self._config = GPT2Config.from_pretrained(self.base.path)
        for task in self.tasks:
            expert = self._experts[task]
            self._check_expert_config(task, expert)
            self._heads[task] = models.score_head(expert, task, glue.TASKS[task].num_labels)
            models.weights(expert)  # a .bin-only expert is converted now, not mid-run
        models.weights(self.base)
        for task in self.tasks:
            self.tokens(task, "test")

    def _check_expert_config(self, task: str, expert: ResolvedArtifact) -> None:
        config = models.read_config(expert)
        pad = config.get("pad_token_id")
        if pad is not None and int(pad) != self.pad_id:
            from harness.errors import CheckpointError

            raise CheckpointError(
                f"{expert.id} pads with token id {pad} but the {models.BASE} tokenizer's "
                f"{models.PAD_TOKEN} is {self.pad_id}; the expert must be fine-tuned from "
                f"{models.BASE} with {models.PAD_TOKEN} as padding"
            )

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        experts = {task: models.checkpoint(self._experts[task]) for task in self.tasks}
        return ExpertPool(models.checkpoint(self.base), experts)

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        if self._template is None:
            self._template = models.backbone_template(self._config, self.pad_id)
        return models.build_backbone(self._template, state)

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        """Real tokens: batches are right-padded with the pad id."""
        return attention_mask(inputs, self.pad_id).bool()

    def head(self, task: str) -> torch.nn.Module:
        return self._heads[task]

    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Right-padded int64 token ids and labels, grouped by length (fixed order)."""
        return bucketed_batches(
            self.tokens(task, split), pad_id=self.pad_id, batch_size=batch_size, limit=limit
        )

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Accuracy (%) of the task's score head on ``model``'s last-token states."""
        device = self.context.device
        batches = bucketed_batches(
            self.tokens(task, split), pad_id=self.pad_id, limit=limit, **self.eval_bucketing
        )
        predicted, labels = predict(
            model, self.head(task), batches, device=device, dtype=self.eval_dtype
        )
        if labels.numel() == 0:
            raise RuntimeError(f"{task}/{split}: the split has no examples")
        correct = int((predicted == labels).sum())
        return {"accuracy": 100.0 * correct / labels.numel(), "n": float(labels.numel())}

    @property
    def eval_bucketing(self) -> dict[str, int]:
        """How ``evaluate`` batches (``bucketed_batches`` keywords): the batch size
        option (256 on CUDA, 32 on CPU), at most ``EVAL_MAX_TOKENS`` padded tokens."""
        size = int(self.options["eval_batch_size"])
        size = size or (256 if self.context.device.type == "cuda" else 32)
        return {"batch_size": size, "max_tokens": EVAL_MAX_TOKENS}

    @property
    def eval_dtype(self) -> torch.dtype:
        return resolve_dtype(self.options["dtype"], self.context.device)

    def reference_classifier(self, task: str) -> torch.nn.Module:
        """The expert as transformers' GPT2ForSequenceClassification, loaded from its
        snapshot: FusionBench's scorer, for ``harness bench eval``."""
        from transformers import GPT2ForSequenceClassification
        from transformers.utils import logging

        shown = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()
        try:
            model = GPT2ForSequenceClassification.from_pretrained(self._experts[task].path)
        finally:
            if shown:
                logging.enable_progress_bar()
        model.config.pad_token_id = self.pad_id
        return model.eval()

    def artifacts(self) -> list[Artifact]:
        found = [Artifact.of("base", self.base)]
        found += [Artifact.of(f"expert:{task}", self._experts[task]) for task in self.tasks]
        assert self._dataset is not None
        found += [Artifact.of(f"dataset:{task}", self._dataset) for task in self.tasks]
        return found

    # ------------------------------------------------------------------ data
    def tokens(self, task: str, split: str) -> TokenizedSplit:
        """A suite split's token ids (no padding), tokenised once into the harness cache."""
        key = (task, split)
        if key not in self._tokens:
            if self._dataset is None:
                raise RuntimeError("call prepare() first")
            spec = glue.TASKS[task]
            identity = {
                "dataset": glue.DATASET,
                "snapshot": self._dataset.identity(),
                "task": task,
                "split": split,
                "hub_split": glue.hub_split(spec, split),
                "carve": None
                if split == "test"
                else {"fraction": VALIDATION_FRACTION, "seed": VALIDATION_SEED},
                "tokenizer": {"model": models.BASE, "snapshot": self.base.identity()},
                "max_length": self.max_length,
                "recipe": TOKENS_RECIPE,
            }
            root = self._dataset.path

            def build() -> TokenizedSplit:
                texts, labels = glue.load_rows(root, spec, split)
                note(f"{self.name}: tokenising {task}/{split} ({len(texts):,} rows), once")
                return tokenize_texts(self._tokenizer, texts, labels, max_length=self.max_length)

            self._tokens[key] = cached_tokenized(identity, build)
        return self._tokens[key]


def _with_weights(resolved: ResolvedArtifact) -> ResolvedArtifact:
    """A hub snapshot without safetensors weights gets its ``pytorch_model.bin`` (same
    commit), which :func:`models.weights` converts once; a mirror is used as it is."""
    if resolved.source != "hub" or models.has_safetensors(resolved.path):
        return resolved
    return resolve(
        resolved.id,
        "models",
        revision=resolved.revision,
        allow_patterns=[models.TORCH_WEIGHTS, "*.json"],
    )
