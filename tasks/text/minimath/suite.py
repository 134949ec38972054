"""minimath: a causal LM, math / second-language / symbolic experts, scored by lm-eval.

The offline counterpart of the LLM suites (GSM8K, MGSM): the harness builds a small
``LlamaForCausalLM`` and a word-level tokenizer from generated text in two "languages"
(data.py: L2 is a seeded bijective relexification of L1; digits and markup are shared),
then fine-tunes three experts of that base (build.py): ``math`` (L1 arithmetic word
problems, answers in GSM8K's ``#### N`` form), ``lang2`` (its L2 word rows learned first
on generic L2 text against the frozen base, then L2 reading comprehension) and ``kind``
(the kind of a word). The build is cached under the harness cache keyed by the recipe and
the library versions; later runs load in seconds.

Every task is scored by lm-eval through the same code path as ``gsm8k``
(:mod:`harness.evaluation.lm_harness`): a full lm-eval task config over the build's
local parquet files, ``generate_until`` greedy with GSM8K's prompt form, zero-shot, and
GSM8K's filters (strict-match on ``#### X``; flexible-extract, the last number, on the
numeric tasks). The ranked metric is strict-match exact match (%).

The fourth task, ``math_l2`` (math's problems written in L2), has no expert of its own:
it is the cross-lingual target that layer swapping (Bandarkar et al., 2025) composes from
the math and language experts (``roles``). Its individual reference is the better of its
two parents (``reference_experts``), so a merge's normalised score above 100 on it means
it beat both. ``--only math_l2`` gives the cross-lingual setting alone: pool {math,
lang2}, hyperparameters selected on math_l2's validation split. math_l2's train split
exists only to carve that validation split from; nothing trains on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from safetensors.torch import load_file

from harness.cache import cache_dir, cached_directory, content_key, file_sha256
from harness.progress import note
from harness.registry import register_suite
from harness.splits import validation_indices
from harness.staged_build import build_stage, run_stages
from harness.suite import Artifact, Suite
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.text.minimath import build as build
from tasks.text.minimath import data as data

RECIPE = build.Recipe()
BUILD_VERSION = 2  # bump when the build's code changes meaning
EVAL_BATCH = 64  # sequences per lm-eval generation batch
MAX_GEN_TOKS = 40  # the longest answer (two-step math, five sorted numbers) is ~22 tokens
LIBRARIES = ("torch", "transformers", "tokenizers")
SPLIT_FILES = ("train", "validation", "test")


#: What every expert leaves as the base's in its task stage: the token embeddings and the
#: LM head (the language expert learns its language's rows of both in a stage before)
FROZEN = ("embed_tokens", "lm_head")


def lm_task_name(task: str) -> str:
    """lm-eval's name for a minimath task (prefixed: lm-eval registers other ``math``s)."""
    return f"minimath_{task}"


def lm_task_config(
    task: str, split: str, path: Path, answer_regex: str | None = None
) -> dict[str, Any]:
    """The full lm-eval task config of one task's split: GSM8K's prompt, generation and
    exact-match metric, zero-shot, over the build's parquet file (``answer_regex``: the
    strict-match pattern of a task that is not minimath's own)."""
    answer_regex = answer_regex or data.TASKS[task].answer_regex
    filters = [
        {
            "name": "strict-match",
            "filter": [
                {"function": "regex", "regex_pattern": answer_regex},
                {"function": "take_first"},
            ],
        }
    ]
    if answer_regex == data.TASKS["math"].answer_regex:  # numeric answers
        filters.append(
            {
                "name": "flexible-extract",
                "filter": [
                    {
                        "function": "regex",
                        "group_select": -1,
                        "regex_pattern": r"(-?[$0-9.,]{2,})|(-?[0-9]+)",
                    },
                    {"function": "take_first"},
                ],
            }
        )
    return {
        "task": lm_task_name(task),
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": {split: str(path)}},
        "output_type": "generate_until",
        "test_split": split,
        "doc_to_text": build.prompt("{{question}}"),
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "num_fewshot": 0,
        "metric_list": [
            {
                "metric": "exact_match",
                "aggregation": "mean",
                "higher_is_better": True,
                "ignore_case": True,
                "ignore_punctuation": False,
                "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"],
            }
        ],
        "generation_kwargs": {
            "until": ["Question:", build.EOS],
            "do_sample": False,
            "temperature": 0.0,
            "max_gen_toks": MAX_GEN_TOKS,
        },
        "repeats": 1,
        "filter_list": filters,
        "metadata": {"version": 1.0},
    }


@register_suite(
    "minimath",
    reference="https://arxiv.org/abs/2410.01335",
    description="A built Llama, math / L2 / sorting experts and math in L2, scored by lm-eval.",
)
class MiniMath(Suite):
    """Pretrained small Llama, three fine-tuned experts, four lm-eval generation tasks."""

    tasks = list(data.TASKS)
    metric = "exact_match"
    provides: ClassVar[frozenset[str]] = frozenset({"roles", "batches", "lm"})
    #: Tasks without an expert of their own: their individual reference is the best of these
    reference_experts: ClassVar[Mapping[str, tuple[str, ...]]] = dict(data.CROSS_LINGUAL)
    #: Which expert plays which part in cross-lingual composition (layer_swap reads it)
    roles: ClassVar[Mapping[str, str]] = {"math": "math", "language": "lang2"}
    splits: ClassVar[Mapping[str, str]] = {
        "test": "generated test items, disjoint from train",
        "validation": "a fixed 10% carve of generated train items (capped)",
    }

    # ------------------------------------------------------------------ building
    def _key(self) -> str:
        if not hasattr(self, "_cached_key"):
            self._versions = {name: version(name) for name in LIBRARIES}
            self._cached_key = content_key(
                "minimath", BUILD_VERSION, RECIPE.to_json(), sorted(self._versions.items())
            )
        return self._cached_key

    @property
    def checkpoint_set(self) -> str:
        return f"built:minimath-{self._key()[:8]}"

    def prepare(self) -> None:
        self.root = cached_directory(
            self._key(),
            self._build,
            namespace="minimath",
            resumable=True,
            on_wait=lambda: note("waiting for another process that is building minimath"),
        )
        self._tokenizer = build.load_tokenizer(self.root / "tokenizer.json")
        self._config = build.llama_config(RECIPE, self._tokenizer)
        self._details: dict[str, dict[str, Any]] = {}

    def _build(self, directory: Path) -> None:
        """Build in stages (data + tokenizer, base, one per expert), each kept as it ends;
        a stage is seeded by the recipe alone, so a resumed build writes the same bytes."""
        run_stages(
            "minimath",
            directory,
            ["data", "base", *data.EXPERT_TASKS],
            lambda name: _done(directory, name),
            lambda: self._build_stages(directory),
        )

    def _build_stages(self, directory: Path) -> None:
        progress = self.context.progress
        words = data.lexicon(RECIPE.seed)

        def make_data() -> dict[str, bytes]:
            files: dict[str, bytes] = {}
            for task in data.TASKS:
                for split, rows in split_rows(task, words).items():
                    files[f"{task}/{split}.parquet"] = _parquet_bytes(rows)
            corpus = data.pretraining_corpus(RECIPE.pretrain_documents, RECIPE.seed, words)
            tokenizer = build.train_tokenizer(corpus, data.all_words(words))
            files["tokenizer.json"] = tokenizer.backend_tokenizer.to_str().encode()
            files["lexicon.json"] = json.dumps(words, indent=0).encode()
            return files

        _stage(directory, "data", make_data, "data and tokenizer (4 tasks, 2 languages)")
        tokenizer = build.load_tokenizer(directory / "tokenizer.json")
        config = build.llama_config(RECIPE, tokenizer)
        pad = tokenizer.pad_token_id

        def train(
            start: dict[str, torch.Tensor] | None,
            parts: list[tuple[build.Sequences, float]],
            **options: Any,
        ) -> dict[str, torch.Tensor]:
            """``build.train`` of a model from ``start`` with this build's recipe."""
            model = build.new_model(config, start)
            return build.train(
                model, parts, recipe=RECIPE, pad_id=pad, progress=progress, **options
            )

        def make_base() -> dict[str, dict[str, torch.Tensor]]:
            corpus = data.pretraining_corpus(RECIPE.pretrain_documents, RECIPE.seed, words)
            sequences = build.lm_sequences(tokenizer, corpus)
            state = train(
                None,
                [(sequences, 1.0)],
                steps=RECIPE.pretrain_steps,
                lr=RECIPE.pretrain_lr,
                salt="pretrain",
            )
            return {"base.safetensors": state}

        _stage(directory, "base", make_base, f"pretrained base ({RECIPE.pretrain_steps} steps)")
        base = load_file(str(directory / "base.safetensors"))

        def language_rows(text: build.Sequences) -> dict[str, torch.Tensor]:
            """The language expert's first stage: L2's rows of the embeddings and the LM
            head learned on L2 text against the base's frozen body."""
            ids = tokenizer.convert_tokens_to_ids(list(words.values()))
            return train(
                base,
                [(text, 1.0)],
                steps=RECIPE.language_embedding_steps,
                lr=RECIPE.language_embedding_lr,
                salt="lang2-rows",
                frozen=("layers.", "model.norm"),
                rows=torch.as_tensor(ids),
            )

        for number, task in enumerate(data.EXPERT_TASKS, 1):

            def make_expert(task: str = task) -> dict[str, dict[str, torch.Tensor]]:
                rows = pd.read_parquet(directory / task / "train.parquet").to_dict("records")
                parts = [(build.sft_sequences(tokenizer, rows), 1.0)]
                start = base
                if task == self.roles["language"]:
                    text = build.lm_sequences(
                        tokenizer, data.lang2_text(len(rows), RECIPE.seed, words)
                    )
                    start = language_rows(text)
                    share = RECIPE.lang2_text_share
                    parts = [(parts[0][0], 1.0 - share), (text, share)]
                state = train(
                    start,
                    [part for part in parts if part[1] > 0],
                    steps=RECIPE.finetune_steps,
                    lr=RECIPE.finetune_lr,
                    salt=task,
                    frozen=FROZEN,
                )
                return {f"{task}.safetensors": state}

            label = (
                f"expert {number}/{len(data.EXPERT_TASKS)} {task} ({RECIPE.finetune_steps} steps)"
            )
            _stage(directory, task, make_expert, label)

    # ------------------------------------------------------------------ contract
    def expert_tasks(self) -> list[str]:
        """The experts the selected tasks need: their own, and a target's parents."""
        needed: list[str] = []
        for task in self.tasks:
            for expert in self.reference_experts.get(task, (task,)):
                if expert not in needed:
                    needed.append(expert)
        return [task for task in data.EXPERT_TASKS if task in needed]

    def pool(self) -> ExpertPool:
        return ExpertPool(
            Checkpoint(self.root / "base.safetensors", "harness/minimath-base"),
            {
                task: Checkpoint(self.root / f"{task}.safetensors", f"harness/minimath-{task}")
                for task in self.expert_tasks()
            },
            device=self.context.device,
        )

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        return build.new_model(self._config, state).eval()

    def tokenizer(self):
        return self._tokenizer

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """lm-eval's exact match (%) of greedy generations on one task's split."""
        from harness.evaluation.lm_harness import LmTask, score

        lm_task = LmTask(
            lm_task_name(task),
            "exact_match,strict-match",
            config=lm_task_config(
                task, split, self.split_path(task, split), self.answer_regex(task)
            ),
        )
        scored = score(
            model,
            self._tokenizer,
            [lm_task],
            limit=limit,
            batch_size=EVAL_BATCH,
            seed=self.context.seed,
            samples_dir=cache_dir() / "lm-samples" / "minimath",
            max_length=self._config.max_position_embeddings,
        )[lm_task.name]
        self._details[task] = {**scored.details, "split": split}
        metrics = dict(scored.metrics)
        return {"exact_match": metrics["exact_match,strict-match"], **metrics, "n": scored.n}

    def batches(
        self, task: str, split: str, *, batch_size: int = EVAL_BATCH, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A split's items as the experts were fine-tuned on them (``Question: q Answer:
        a<eos>``), length-bucketed and right-padded with the pad id, in a fixed order. The
        label of an item is its prompt's length in tokens: the answer is the rest of the
        sequence, so the next-token targets are the inputs from that position on. What
        RegMean's Gram matrices read: every layer input of the items' real tokens."""
        import numpy as np

        from harness.evaluation.text import TokenizedSplit, bucketed_batches

        frame = pd.read_parquet(self.split_path(task, split))
        rows = frame.to_dict("records")[:limit]
        sequences = build.sft_sequences(self._tokenizer, rows)
        prompts = [row.count(build.IGNORE) for row in sequences.targets]
        tokens = TokenizedSplit(
            [np.asarray(ids, dtype=np.int64) for ids in sequences.ids], np.asarray(prompts)
        )
        pad = self._tokenizer.pad_token_id
        return bucketed_batches(tokens, pad_id=pad, batch_size=batch_size, limit=limit)

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        """Real tokens: batches are right-padded with the pad id (never a text token)."""
        return inputs != self._tokenizer.pad_token_id

    def split_path(self, task: str, split: str) -> Path:
        """The parquet file of one task's split."""
        return self.root / task / f"{split}.parquet"

    def answer_regex(self, task: str) -> str:
        """The strict-match pattern of ``task``'s answers (group 1 is the answer)."""
        return data.TASKS[task].answer_regex

    def evaluation_details(self, task: str) -> Mapping[str, Any]:
        return self._details.get(task, {})

    def artifacts(self) -> list[Artifact]:
        built = [
            ("base", "harness/minimath-base", "base.safetensors"),
            ("tokenizer", "harness/minimath-tokenizer", "tokenizer.json"),
        ]
        built += [
            (f"expert:{task}", f"harness/minimath-{task}", f"{task}.safetensors")
            for task in self.expert_tasks()
        ]
        built += [
            (f"dataset:{task}", f"harness/{self.name}-{task}-test", self.split_path(task, "test"))
            for task in self.tasks
        ]
        return [Artifact(role, name, "built", sha256=self._sha(file)) for role, name, file in built]

    def _sha(self, file: str | Path) -> str:
        if not hasattr(self, "_hashes"):
            self._hashes: dict[str, str] = {}
        key = str(file)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(self.root / file)
        return self._hashes[key]


def split_rows(task: str, words: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """A task's train / validation / test rows (validation: the fixed carve of train)."""
    seed = RECIPE.seed
    test = data.examples(task, "test", RECIPE.test_examples, seed, dict(words))
    whole = data.examples(task, "train", RECIPE.train_examples, seed, dict(words))
    train_index, validation_index = validation_indices(len(whole))
    return {
        "train": [whole[i].to_json() for i in train_index],
        "validation": [whole[i].to_json() for i in validation_index[: RECIPE.validation_examples]],
        "test": [example.to_json() for example in test],
    }


def _parquet_bytes(rows: list[dict[str, str]]) -> bytes:
    import io

    buffer = io.BytesIO()
    pd.DataFrame(rows, columns=["question", "answer"]).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _stage_files(directory: Path, name: str) -> list[Path]:
    if name == "data":
        files = [directory / "tokenizer.json", directory / "lexicon.json"]
        return files + [directory / t / f"{s}.parquet" for t in data.TASKS for s in SPLIT_FILES]
    return [directory / f"{name}.safetensors"]


def _done(directory: Path, name: str) -> bool:
    return all(path.is_file() for path in _stage_files(directory, name))


def _stage(
    directory: Path,
    name: str,
    make: Callable[[], Mapping[str, dict[str, torch.Tensor] | bytes]],
    label: str,
) -> None:
    """Make one build stage's files unless an earlier run finished them (seeded by the
    recipe alone; each file written atomically)."""
    build_stage("minimath", directory, _stage_files(directory, name), label, RECIPE.seed, make)
