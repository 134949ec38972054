"""glue-flan-t5: GLUE as text to text with Flan-T5 experts (FusionBench's suite).

Eight tasks (cola mnli mrpc qnli qqp rte sst2 stsb). Each example becomes FusionBench's
prompt (:mod:`tasks.text.glue.prompts`); a model is scored by greedy generation
(``max_length`` 10), decoded without special tokens and compared with the target text:
accuracy (%) by exact match, and for stsb 100 × Spearman ρ between the parsed number
(0.0 when it is not one) and the label printed with one decimal, as FusionBench compares
it. The suite's ``score`` is that number for every task (the key tables rank by).
Scored split: GLUE validation (validation_matched for mnli); hyperparameters are chosen on
the fixed held-out 10% of train.

Checkpoint sets (``--suite-set checkpoints=...``, recorded as ``checkpoint_set``):
``full`` google/flan-t5-base + tanganke/flan-t5-base_glue-<task>; ``lora16`` the same
base + tanganke/flan-t5-base_glue-<task>_lora-16; ``large-lora16`` google/flan-t5-large +
tanganke/flan-t5-large_glue-<task>_lora-16. LoRA adapters are merged into dense weights
with peft before any method runs (:mod:`tasks.text.glue.lora`).

Data-based methods see the prompt token ids and class labels; the model returns the
first target token's logits and ``head(task)`` keeps those of each label word's first
token (stsb: the first tokens of the printed scores, with Flan-T5's tokenizer the digits
0..5, i.e. the integer part). See :mod:`tasks.text.glue.t5`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import CheckpointError
from harness.evaluation.generation import exact_match, generate_texts, spearman_percent
from harness.evaluation.text import (
    TokenizedSplit,
    attention_mask,
    bucketed_batches,
    cached_tokenized,
)
from harness.evaluation.text import tokenize_texts as tokenize
from harness.registry import Param, register_suite
from harness.splits import VALIDATION_FRACTION, VALIDATION_SEED
from harness.suite import Artifact, ClassificationSuite, SuiteContext
from harness.weights.hub import Requirement, ResolvedArtifact, resolve_all
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.text.glue import data as glue
from tasks.text.glue import prompts
from tasks.text.glue.lora import ADAPTER_FILES, merged_checkpoints
from tasks.text.glue.published_flan_t5 import PUBLISHED_GLUE_FLAN_T5
from tasks.text.glue.t5 import MODEL_FILES, LabelWordHead, build_t5, first_token, t5_key

TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]
MAX_INPUT_TOKENS = 512  # FusionBench truncates prompts at the tokenizer's 512
MAX_LENGTH = 10  # generate(max_length=10): start token + up to 9 generated tokens
TOKENS_FORMAT = 1


@dataclass(frozen=True)
class CheckpointSet:
    base: str
    experts: str  # hub id pattern with {task}
    lora: bool


CHECKPOINT_SETS = {
    "full": CheckpointSet("google/flan-t5-base", "tanganke/flan-t5-base_glue-{task}", False),
    "lora16": CheckpointSet(
        "google/flan-t5-base", "tanganke/flan-t5-base_glue-{task}_lora-16", True
    ),
    "large-lora16": CheckpointSet(
        "google/flan-t5-large", "tanganke/flan-t5-large_glue-{task}_lora-16", True
    ),
}

PARAMS = {
    "checkpoints": Param(
        "full",
        "full: flan-t5-base full fine-tunes; lora16: flan-t5-base LoRA r=16 adapters (merged); "
        "large-lora16: flan-t5-large LoRA r=16 adapters (merged)",
        choices=tuple(CHECKPOINT_SETS),
    ),
    "dtype": Param(
        "auto",
        "evaluation precision (auto: bf16 on CUDA, fp32 on CPU; fp32 reproduces "
        "full-precision decoding where bf16 flips a near-tie)",
        choices=("auto", "bf16", "fp32"),
    ),
    "eval_batch_size": Param(0, "evaluation batch size (0: 128 on CUDA, 32 on CPU)", low=0),
}


@register_suite(
    "glue-flan-t5",
    params=PARAMS,
    reference="https://tanganke.github.io/fusion_bench/modelpool/flan-t5_generation/",
)
class GlueFlanT5(ClassificationSuite):
    """GLUE's eight tasks as text to text with Flan-T5 experts, scored by generation."""

    tasks = TASKS
    metric = "score"  # accuracy % (stsb: Spearman ρ × 100)
    published: ClassVar = PUBLISHED_GLUE_FLAN_T5

    def __init__(self, context: SuiteContext) -> None:
        super().__init__(context)
        self.tasks = list(type(self).tasks)
        self.options = {name: param.default for name, param in PARAMS.items()}
        self.options.update(context.options)
        self.set = CHECKPOINT_SETS[self.options["checkpoints"]]
        self._base: ResolvedArtifact | None = None
        self._data: ResolvedArtifact | None = None
        self._experts: dict[str, ResolvedArtifact] = {}
        self._expert_paths: dict[str, Any] = {}
        self._tokenizer: Any = None
        self._config: Any = None
        self._label_tokens: dict[str, tuple[int, ...]] = {}
        self._splits: dict[tuple[str, str], TokenizedSplit] = {}

    # ------------------------------------------------------------------ identity
    @property
    def checkpoint_set(self) -> str:
        return f"{self.options['checkpoints']}:{self.set.base}"

    def expert_id(self, task: str) -> str:
        return self.set.experts.format(task=task)

    def required_artifacts(self) -> list[Requirement]:
        base = Requirement(self.set.base, "models", MODEL_FILES)
        files = ADAPTER_FILES if self.set.lora else MODEL_FILES
        experts = [Requirement(self.expert_id(task), "models", files) for task in self.tasks]
        data = Requirement(glue.DATASET, "datasets", glue.allow_patterns(self.tasks))
        return [base, *experts, data]

    # ------------------------------------------------------------------ prepare
    def prepare(self) -> None:
        needed = self.required_artifacts()
        resolved = resolve_all(needed, mirror=self.context.mirror, needed_by=self.name)
        self._base, self._data = resolved[0], resolved[-1]
        self._experts = dict(zip(self.tasks, resolved[1:-1]))
        glue.check_files(self._data.path, self.tasks)
        self._tokenizer = load_tokenizer(self._base)
        self._config = load_config(self._base)
        self._label_tokens = {task: label_tokens(self._tokenizer, task) for task in self.tasks}
        if self.set.lora:
            self._expert_paths = merged_checkpoints(self._base, self._experts)
        else:
            self._expert_paths = {task: self._experts[task].path for task in self.tasks}

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        base = Checkpoint(self._resolved_base.path, self.set.base, t5_key)
        experts = {
            task: Checkpoint(self._expert_paths[task], self.expert_id(task), t5_key)
            for task in self.tasks
        }
        return ExpertPool(base, experts)

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        return build_t5(self._config, state)

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        """Real tokens: batches are right-padded with the pad id."""
        return attention_mask(inputs, self.pad_id).bool()

    def head(self, task: str) -> torch.nn.Module:
        return LabelWordHead(int(self._config.vocab_size), self._label_tokens[task])

    def batches(
        self, task: str, split: str, *, batch_size: int = 256, limit: int | None = None
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Prompt token ids (right-padded with pad id 0) and class ids, length-bucketed."""
        tokens = self.tokenized(task, split)
        if task == "stsb":  # class = which first token the printed score starts with
            starts = score_first_tokens(self._tokenizer)
            classes = self._label_tokens[task]
            labels = [classes.index(starts[prompts.printed_index(s)]) for s in tokens.labels]
            tokens = TokenizedSplit(tokens.ids, np.asarray(labels, dtype=np.int64))
        return bucketed_batches(tokens, pad_id=self.pad_id, batch_size=batch_size, limit=limit)

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Greedy generation, then exact match (accuracy %) or Spearman ρ × 100 (stsb)."""
        device = self.context.device
        size = int(self.options["eval_batch_size"]) or (128 if device.type == "cuda" else 32)
        tokens = self.tokenized(task, split)
        batches = bucketed_batches(
            tokens, pad_id=self.pad_id, batch_size=size, limit=limit, shuffle_seed=None
        )
        texts, labels = generate_texts(
            model.to(device),
            batches,
            lambda ids: self._tokenizer.batch_decode(ids, skip_special_tokens=True),
            special_ids=self.special_ids,
            max_length=MAX_LENGTH,
            device=device,
            dtype=evaluation_dtype(self.options["dtype"], device),
            progress=self.context.progress,
            desc=f"{task}/{split}",
        )
        if task == "stsb":
            # FusionBench compares with the parsed target text, i.e. the label at one decimal
            score = spearman_percent(texts, [float(prompts.score_text(s)) for s in labels])
            return {"score": score, "spearman": score, "n": float(len(texts))}
        words = self.target_texts(task)
        score = exact_match(texts, [words[int(label)] for label in labels])
        return {"score": score, "accuracy": score, "n": float(len(texts))}

    # ------------------------------------------------------------------ bench
    @property
    def eval_dtype(self) -> torch.dtype:
        return evaluation_dtype(self.options["dtype"], self.context.device)

    def bench_texts(
        self, task: str, split: TokenizedSplit, *, reference: bool
    ) -> tuple[list[str], list[str], float]:
        """(generated texts in example order, target texts, seconds) of ``task``'s expert
        on ``split``: the suite's own path (bucketed, own greedy loop, ``dtype``) or, with
        ``reference``, FusionBench's (transformers' ``generate`` on every prompt padded to
        512 with an attention mask, batches of 8 in order, fp32). One batch runs untimed
        first (kernel and allocator set-up); model loading is not timed."""
        import tempfile
        import time

        from harness.evaluation.text import bucket_groups, pad_batch

        device = self.context.device
        decode = self._tokenizer.batch_decode
        if reference:
            from transformers import T5ForConditionalGeneration

            with tempfile.TemporaryDirectory() as folder:  # a LoRA merge stores weights only
                source = Path(self._expert_paths[task])
                if not (source / "config.json").is_file():
                    self._config.save_pretrained(folder)
                    (Path(folder) / "model.safetensors").symlink_to(source / "model.safetensors")
                    source = Path(folder)
                model = T5ForConditionalGeneration.from_pretrained(source, dtype=torch.float32)
            model = model.float().to(device).eval()
            ids = pad_batch(split.ids, self.pad_id)
            width = MAX_INPUT_TOKENS - ids.shape[1]
            ids = torch.nn.functional.pad(ids, (0, width), value=self.pad_id)

            def run(start: int) -> list[str]:
                batch = ids[start : start + 8].to(device)
                out = model.generate(
                    input_ids=batch,
                    attention_mask=(batch != self.pad_id).long(),
                    max_length=MAX_LENGTH,
                    do_sample=False,
                    num_beams=1,
                )
                return decode(out.cpu(), skip_special_tokens=True)

            with torch.no_grad():
                run(0)
                _sync(device)
                tick = time.perf_counter()
                texts = [text for start in range(0, len(split), 8) for text in run(start)]
                _sync(device)
        else:
            model = self.build_model(self.pool().expert_state(task)).to(device)
            size = int(self.options["eval_batch_size"]) or (128 if device.type == "cuda" else 32)
            dtype = self.eval_dtype

            def generate(part: TokenizedSplit) -> list[str]:
                batches = bucketed_batches(
                    part, pad_id=self.pad_id, batch_size=size, shuffle_seed=None
                )
                return generate_texts(
                    model,
                    batches,
                    lambda out: decode(out, skip_special_tokens=True),
                    special_ids=self.special_ids,
                    max_length=MAX_LENGTH,
                    device=device,
                    dtype=dtype,
                    progress=False,
                )[0]

            generate(split.subset(np.arange(min(size, len(split)))))
            _sync(device)
            tick = time.perf_counter()
            in_batches = generate(split)
            _sync(device)
            order = np.concatenate(
                bucket_groups(split.lengths(), batch_size=size, shuffle_seed=None)
            )
            texts = [""] * len(split)
            for position, index in enumerate(order):
                texts[index] = in_batches[position]
        seconds = time.perf_counter() - tick
        if task == "stsb":
            targets = [prompts.score_text(score) for score in split.labels]
        else:
            words = self.target_texts(task)
            targets = [words[int(label)] for label in split.labels]
        return texts, targets, seconds

    def artifacts(self) -> list[Artifact]:
        found = [Artifact.of("base", self._resolved_base)]
        found += [Artifact.of(f"expert:{task}", self._experts[task]) for task in self.tasks]
        if self._data is not None:
            found.append(Artifact.of("dataset", self._data))
        return found

    # ------------------------------------------------------------------ data
    @property
    def _resolved_base(self) -> ResolvedArtifact:
        if self._base is None:
            raise RuntimeError("call prepare() first")
        return self._base

    @property
    def pad_id(self) -> int:
        return int(self._config.pad_token_id)

    @property
    def special_ids(self) -> dict[str, int]:
        eos = self._config.eos_token_id
        return {
            "start_id": int(self._config.decoder_start_token_id),
            "eos_id": int(eos if isinstance(eos, int) else eos[0]),
            "pad_id": self.pad_id,
        }

    def target_texts(self, task: str) -> list[str]:
        """Label words as FusionBench compares them: tokenised, then decoded."""
        tokenizer = self._tokenizer
        return [
            tokenizer.decode(tokenizer(word)["input_ids"], skip_special_tokens=True)
            for word in prompts.LABEL_WORDS[task]
        ]

    def tokenized(self, task: str, split: str) -> TokenizedSplit:
        """The task's prompts as token ids with raw labels, tokenised once and cached.

        Whole splits only (``limit`` applies when batching): the Rust tokenizer does
        GLUE's largest train split (qqp, 364k prompts) in well under a minute, once."""
        known = self._splits.get((task, split))
        if known is not None:
            return known
        spec = glue.TASKS[task]
        data = self._data
        if data is None:
            raise RuntimeError("call prepare() first")
        identity: dict[str, Any] = {
            "format": TOKENS_FORMAT,
            "dataset": glue.DATASET,
            "snapshot": data.identity(),
            "task": task,
            "split": glue.hub_split(spec, split),
            "tokenizer": self._resolved_base.identity(),
            "template": prompts.TEMPLATES[task],
            "max_length": MAX_INPUT_TOKENS,
        }
        if split != "test":
            identity["carve"] = {"part": split, "fraction": VALIDATION_FRACTION,
                                 "seed": VALIDATION_SEED}  # fmt: skip

        def build() -> TokenizedSplit:
            texts, labels = glue.load_rows(data.path, spec, split)
            inputs = [prompts.prompt(task, spec.fields, text) for text in texts]
            return tokenize(self._tokenizer, inputs, labels, max_length=MAX_INPUT_TOKENS)

        tokens = cached_tokenized(identity, build)
        self._splits[(task, split)] = tokens
        return tokens


# ---------------------------------------------------------------------------- helpers
def evaluation_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA where supported, else fp32. Never fp16: T5's activations
    overflow it (the reason Flan-T5 was trained in bf16)."""
    if name == "bf16":
        return torch.bfloat16
    if name == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


def load_tokenizer(base: ResolvedArtifact) -> Any:
    """The base model's tokenizer (never remote code), or a one-line error.

    Its files are checked first: transformers would otherwise build an empty T5
    tokenizer from config.json alone, and every prompt would become unknown tokens.
    """
    from transformers import AutoTokenizer

    target = base.path if base.source == "mirror" else f"DIR/models/{base.id}"
    fetch = (
        f"download them with `hf download {base.id} --include '*.json' --include spiece.model "
        f"--local-dir {target}`"
    )
    if not any((Path(base.path) / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(
            f"{base.id} at {base.path} has no usable tokenizer (neither "
            f"{' nor '.join(TOKENIZER_FILES)}); {fetch}"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base.path), trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError, ImportError) as error:
        raise CheckpointError(
            f"{base.id} at {base.path} has no usable tokenizer ({type(error).__name__}); {fetch}"
        ) from None
    if tokenizer is None or tokenizer.pad_token_id is None:
        raise CheckpointError(f"{base.id} has no tokenizer with a pad token; {fetch}")
    return tokenizer


def load_config(base: ResolvedArtifact) -> Any:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(base.path), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{base.id} at {base.path} has no readable config.json ({type(error).__name__}); "
            "download it again"
        ) from None
    if config.model_type != "t5":
        raise CheckpointError(f"{base.id} is a {config.model_type!r} model, not T5")
    return config


def score_first_tokens(tokenizer: Any) -> list[int]:
    """The first token of each printable stsb target, "0.0" … "5.0"."""
    return [first_token(tokenizer, text) for text in prompts.PRINTED_SCORES]


def label_tokens(tokenizer: Any, task: str) -> tuple[int, ...]:
    """The first token of each class's target, distinct per task (else a one-line error).

    stsb's classes are the distinct first tokens of the printed scores 0.0 … 5.0, in
    order: with Flan-T5's tokenizer the integer part's digit, six classes "0" … "5". A
    label's class is thus the token a model writing its target emits first, whatever the
    tokenizer does with the decimals.
    """
    if task == "stsb":
        return tuple(dict.fromkeys(score_first_tokens(tokenizer)))
    words = prompts.LABEL_WORDS[task]
    tokens = tuple(first_token(tokenizer, word) for word in words)
    if len(set(tokens)) != len(tokens):
        clash = [word for word, token in zip(words, tokens) if tokens.count(token) > 1]
        raise CheckpointError(
            f"{task}: the targets {' and '.join(map(repr, clash))} begin with the same token, "
            "so a head over first tokens cannot tell them apart; use a T5 tokenizer"
        )
    return tokens


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
