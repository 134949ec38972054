"""The shared causal-LM suite: experts of one base merged, each task scored by lm-eval.

A task is one expert's skill (``math``, ``instruction``, a language) scored on one or more
lm-eval tasks (:class:`tasks.llm.benchmarks.Benchmark`); its ``score`` is the mean of their
ranked metrics (percent), and every metric lm-eval reports is kept as
``<lm-eval task>/<metric>,<filter>``, including ``no_answer,<filter>``: the share of
responses in which a filter found no answer (a merge that stops writing ``#### N`` is told
apart from one that computes wrong numbers).

The merged model goes to lm-eval in memory (``HFLM(pretrained=model)``); with
``backend=vllm`` it is saved to a temporary safetensors directory that lm-eval's vLLM
model loads (:mod:`harness.evaluation.lm_vllm`). ``evaluation_details(task)`` gives the
record lm-eval's version, each task's version, n-shot, filters, the data files, the
validation carve and the per-sample log.

The pool holds every expert of the checkpoint set (``--only a,b`` restricts it, as in every
suite); the scored tasks may be fewer (a skill whose benchmark lm-eval lacks is merged, not
scored).
Data-based methods need labelled batches and heads, which these suites do not provide, so
they are refused in one line before anything loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.cache import cache_dir
from harness.errors import HarnessError, UnknownNameError
from harness.evaluation.lm_harness import LmScore, LmTask, require_chat_template, score
from harness.registry import Param
from harness.suite import Artifact, Suite, SuiteContext
from harness.weights.hub import Requirement, ResolvedArtifact, resolve_all
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.llm import benchmarks as bench
from tasks.llm import models
from tasks.llm.checkpoints import CHECKPOINT_SETS, CheckpointSet, checkpoint_set

VLLM_DTYPES = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def common_params(default_set: str) -> dict[str, Param]:
    """Options every LLM suite has (``--suite-set key=value``)."""
    return {
        "checkpoints": Param(
            default_set,
            "checkpoint set: " + ", ".join(CHECKPOINT_SETS) + ", or custom (base=, experts=)",
            choices=(*CHECKPOINT_SETS, "custom"),
        ),
        "base": Param("", "checkpoints=custom: the base model's hub id"),
        "experts": Param("", "checkpoints=custom: name=hub-id pairs, e.g. math=org/a,sw=org/b"),
        "backend": Param(
            "hf", "hf: the model in memory; vllm: a temporary copy", choices=("hf", "vllm")
        ),
        "dtype": Param(
            "auto",
            "evaluation precision (auto: stored dtype on CUDA, fp32 on CPU)",
            choices=("auto", "bf16", "fp16", "fp32"),
        ),
        "limit": Param(0, "score at most N documents per lm-eval task (0: all)", low=0),
        "max_gen_toks": Param(0, "cap on generated tokens (0: the task's own, 256)", low=0),
        "num_fewshot": Param(-1, "few-shot examples (-1: the task's own)", low=-1),
        "eval_batch_size": Param(0, "lm-eval batch size (0: 16 on CUDA, 4 on CPU)", low=0),
    }


class CausalLmSuite(models.ResolvedCausalLm, Suite):
    """Base + experts of a checkpoint set, tasks scored by lm-eval (see the module doc)."""

    metric = "score"
    provides: ClassVar[frozenset[str]] = frozenset()
    PARAMS: ClassVar[dict[str, Param]] = {}
    #: empty at class level: the tasks and the experts merged depend on the options, so a
    #: method's expert count (SLERP: two) is checked on the pool, not on a default list
    tasks: list[str] = []

    def __init__(self, context: SuiteContext) -> None:
        super().__init__(context)
        self.options = {name: param.default for name, param in self.PARAMS.items()}
        self.options.update(context.options)
        self.set: CheckpointSet = checkpoint_set(self.options)
        self.merged = self._merged_experts()
        self.benchmarks: dict[str, list[bench.Benchmark]] = {}
        self._choose()
        self._base: ResolvedArtifact | None = None
        self._experts: dict[str, ResolvedArtifact] = {}
        self._data: dict[str, ResolvedArtifact] = {}
        self._tokenizer: Any = None
        self._config: Any = None
        self._details: dict[str, dict[str, Any]] = {}
        self._trimmed: dict[str, str] = {}  # expert -> how its vocabulary was trimmed

    # ------------------------------------------------------------------ subclass hooks
    def task_benchmarks(self) -> dict[str, list[bench.Benchmark]]:
        """Scored task → the lm-eval tasks that score it (in order)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ identity
    @property
    def checkpoint_set(self) -> str:
        """``<set>:<base>``; a custom set lists its experts, and a merge of only some of a
        set's experts names them, so different pools never share a leaderboard cell."""
        name = f"{self.set.name}:{self.set.base}"
        if self.set.name == "custom":
            return name + ":" + ",".join(f"{n}={self.set.experts[n]}" for n in self.merged)
        if self.merged != list(self.set.experts):
            return name + ":" + ",".join(self.merged)
        return name

    def _merged_experts(self) -> list[str]:
        """The experts merged unless ``--only`` names some: the whole set."""
        return list(self.set.experts)

    def _choose(self) -> None:
        self.benchmarks = self.task_benchmarks()
        self.tasks = list(self.benchmarks)
        for task in self.tasks:
            for benchmark in self.benchmarks[task]:
                benchmark.config()  # an unknown lm-eval task fails here, in one line

    def select_tasks(self, tasks: list[str] | None) -> None:
        """``--only a,b``: merge only the experts a and b of the set (and score those of
        them the suite scores), as ``--only`` restricts the pool of every suite."""
        if not tasks:
            return
        unknown = [name for name in tasks if name not in self.set.experts]
        if unknown:
            raise UnknownNameError(
                f"checkpoint set {self.set.name!r} of {self.name} has no expert {unknown[0]!r}; "
                f"its experts: {', '.join(self.set.experts)}"
            )
        self.merged = [name for name in self.set.experts if name in tasks]
        self._choose()

    @property
    def all_benchmarks(self) -> list[bench.Benchmark]:
        return [b for task in self.tasks for b in self.benchmarks[task]]

    @property
    def splits(self) -> dict[str, str]:  # type: ignore[override]
        if not self._data:
            return {}
        rules = {b.task: bench.carve_rule(b, self._data[b.dataset]) for b in self.all_benchmarks}
        return bench.split_description(rules)

    # ------------------------------------------------------------------ prepare
    def required_artifacts(self) -> list[Requirement]:
        """Base, every merged expert and each benchmark's dataset (its subsets only)."""
        base = Requirement(self.set.base, "models", models.MODEL_FILES)
        experts = [
            Requirement(self.set.experts[name], "models", models.MODEL_FILES)
            for name in self.merged
        ]
        subsets: dict[str, list[str]] = {}
        for benchmark in self.all_benchmarks:
            names = subsets.setdefault(benchmark.dataset, [])
            if benchmark.subset and benchmark.subset not in names:
                names.append(benchmark.subset)
        data = [bench.dataset_requirement(dataset, names) for dataset, names in subsets.items()]
        return [base, *experts, *data]

    def _resolve(self, needed: list[Requirement]) -> dict[Requirement, ResolvedArtifact]:
        unique = list(dict.fromkeys(needed))  # an expert may repeat the base or another
        found = resolve_all(unique, mirror=self.context.mirror, needed_by=self.name)
        return dict(zip(unique, found))

    def prepare(self) -> None:
        from transformers import AutoConfig

        if self.options["backend"] == "vllm":
            from harness.evaluation.lm_vllm import require_vllm

            require_vllm()
        needed = self.required_artifacts()
        found = self._resolve(needed)
        resolved = [found[requirement] for requirement in needed]
        self._base = resolved[0]
        count = len(self.merged)
        self._experts = dict(zip(self.merged, resolved[1 : 1 + count]))
        self._data = {artifact.id: artifact for artifact in resolved[1 + count :]}
        for benchmark in self.all_benchmarks:
            bench.check_files(benchmark, self._data[benchmark.dataset])
        appended = {
            name: models.check_architecture(self._base, name, expert)
            for name, expert in self._experts.items()
        }
        self._tokenizer = models.load_tokenizer(self._base)
        rows = int(models.read_config(self._base)["vocab_size"])
        self._trimmed = {}
        for name, expert in self._experts.items():
            tokens = models.check_tokenizer(self._tokenizer, self._base.id, name, expert, rows)
            if appended[name]:
                shown = ", ".join(tokens[:3]) or "tokens without tokenizer files"
                self._trimmed[name] = (
                    f"{rows + appended[name]} → {rows} embedding rows (appended: {shown})"
                )
        chat = [b.task for b in self.all_benchmarks if b.chat]
        if chat:
            require_chat_template(self._tokenizer, chat)
        try:
            self._config = AutoConfig.from_pretrained(str(self._base.path), trust_remote_code=False)
        except (OSError, ValueError) as error:
            raise HarnessError(
                f"{self._base.id} at {self._base.path} has no readable config "
                f"({type(error).__name__}); download it again"
            ) from None

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        base = Checkpoint(self.base.path, self.base.id)
        rows = int(models.read_config(self.base)["vocab_size"])
        experts: dict[str, Checkpoint] = {}
        for name in self.merged:
            expert = self._experts[name]
            if name in self._trimmed:  # appended tokens: rows beyond the base's left out
                vocab = int(models.read_config(expert)["vocab_size"])
                experts[name] = models.TrimmedCheckpoint(
                    expert.path, expert.id, vocab_rows=vocab, keep_rows=rows
                )
            else:
                experts[name] = Checkpoint(expert.path, expert.id)
        return ExpertPool(base, experts)

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """lm-eval's metrics for ``task``'s benchmarks on ``split``; ``score`` is the mean
        of their ranked metrics."""
        cap = int(self.options["limit"]) or None
        if limit is not None:
            cap = min(cap, limit) if cap else limit
        metrics: dict[str, float] = {}
        ranked, count, details = [], 0, {}
        chosen = self.benchmarks[task]
        lm_tasks = {
            b.task: LmTask(
                b.task,
                b.metric,
                data_files=bench.data_files(b, self._data[b.dataset], split),
                overrides=self.overrides(b),
            )
            for b in chosen
        }
        results: dict[str, LmScore] = {}
        for chat in sorted({b.chat for b in chosen}):  # one lm-eval run per prompt style
            group = [lm_tasks[b.task] for b in chosen if b.chat == chat]
            results.update(self._score(model, group, cap, chat))
        for benchmark in chosen:
            result = results[benchmark.task]
            metrics.update({f"{benchmark.task}/{k}": v for k, v in result.metrics.items()})
            ranked.append(result.metrics[benchmark.metric])
            count += result.n
            details[benchmark.task] = {
                **{k: v for k, v in result.details.items() if k != "lm_eval_version"},
                "n": result.n,
                "overrides": dict(lm_tasks[benchmark.task].overrides),
                "validation": bench.carve_rule(benchmark, self._data[benchmark.dataset]),
            }
        self._details[task] = {
            "lm_eval_version": result.details["lm_eval_version"],
            "backend": self.options["backend"],
            "split": split,
            "limit": cap,
            "merged_experts": {name: self.set.experts[name] for name in self.merged},
            **({"vocabulary_trimmed": dict(self._trimmed)} if self._trimmed else {}),
            "benchmarks": details,
        }
        return {"score": float(np.mean(ranked)), **metrics, "n": float(count)}

    def _score(
        self, model: torch.nn.Module, tasks: list[LmTask], limit: int | None, chat: bool
    ) -> dict[str, LmScore]:
        device = self.context.device
        size = int(self.options["eval_batch_size"]) or (16 if device.type == "cuda" else 4)
        if self.options["backend"] == "vllm":
            from harness.evaluation.lm_vllm import score_vllm

            return score_vllm(
                model,
                self._tokenizer,
                tasks,
                limit=limit,
                seed=self.context.seed,
                samples_dir=self.samples_dir,
                apply_chat_template=chat,
                dtype=VLLM_DTYPES[str(self.options["dtype"])],
                parent=cache_dir() / "vllm-copies",  # disk, not a memory-backed /tmp
            )
        return score(
            model.to(device),
            self._tokenizer,
            tasks,
            limit=limit,
            batch_size=size,
            seed=self.context.seed,
            samples_dir=self.samples_dir,
            apply_chat_template=chat,
        )

    def overrides(self, benchmark: bench.Benchmark) -> dict[str, Any]:
        """Config changes the options ask for (recorded with each score)."""
        changes: dict[str, Any] = {}
        if int(self.options["num_fewshot"]) >= 0:
            changes["num_fewshot"] = int(self.options["num_fewshot"])
        tokens = int(self.options["max_gen_toks"])
        config = benchmark.config()
        if tokens and config.get("output_type") == "generate_until":
            changes["generation_kwargs"] = {
                **(config.get("generation_kwargs") or {}),
                "max_gen_toks": tokens,
            }
        return changes

    def evaluation_details(self, task: str) -> Mapping[str, Any]:
        return self._details.get(task, {})

    def artifacts(self) -> list[Artifact]:
        found = [Artifact.of("base", self.base)]
        found += [Artifact.of(f"expert:{name}", self._experts[name]) for name in self.merged]
        found += [Artifact.of(f"dataset:{data.id}", data) for data in self._data.values()]
        return found

    @property
    def samples_dir(self) -> Path:
        """Where per-sample logs go (content-named JSON lines, one per scored task)."""
        return cache_dir() / "lm-samples" / self.name
