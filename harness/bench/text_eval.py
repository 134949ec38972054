"""``harness bench eval --tasks <text suite>``: the harness's text scoring against the
published recipe, on the same examples, in one run.

For each task, the task's expert scores the first ``limit`` examples of the scored split
twice (tokenisation is cached beforehand and not timed; so is model building):

- reference: the recipe FusionBench uses for its GPT-2 GLUE suite: transformers' own
  sequence classifier loaded from the expert's snapshot, every example padded to the
  maximum length (512) with an attention mask, batches of 8 in dataset order, float32.
- harness: what the suite's ``evaluate`` runs: its backbone with the expert's state and
  the expert's head, length-bucketed batches padded only to their longest example, bf16
  autocast on CUDA (``--dtype``), the suite's evaluation batch size.

A text-to-text suite (glue-flan-t5) offers ``bench_texts(task, split, reference=)``
instead: its own bucketed greedy decoding against transformers' ``generate`` on prompts
padded to 512, batch 8, fp32 (FusionBench's recipe), compared string by string.

Both pipelines' per-example predictions are compared, so a speed-up cannot hide wrong
answers: the report gives how many predictions agree and both accuracies.

A suite offers this by providing ``tokens(task, split)`` (a TokenizedSplit), ``pad_id``,
``max_length``, ``eval_bucketing`` (keyword arguments of ``bucket_groups``),
``eval_dtype`` and ``reference_classifier(task)`` (a module taking ``input_ids`` and
``attention_mask`` and returning an object with ``.logits``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError
from harness.evaluation.text import TokenizedSplit, bucket_groups, bucketed_batches, predict

REFERENCE_BATCH_SIZE = 8  # FusionBench's taskpool dataloader for GPT-2 GLUE
TEXT_PROTOCOL = (
    "tokens",
    "pad_id",
    "max_length",
    "eval_bucketing",
    "eval_dtype",
    "reference_classifier",
)
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass
class TextBenchResult:
    suite: str
    device: str
    limit: int | None
    harness_dtype: str
    harness_batch_size: int
    max_length: int
    examples: dict[str, int] = field(default_factory=dict)
    reference_s: float = 0.0
    harness_s: float = 0.0
    agree: int = 0
    reference_correct: int = 0
    harness_correct: int = 0
    reference_tokens: int = 0
    harness_tokens: int = 0

    @property
    def total(self) -> int:
        return sum(self.examples.values())

    @property
    def reference_per_s(self) -> float:
        return self.total / self.reference_s if self.reference_s else 0.0

    @property
    def harness_per_s(self) -> float:
        return self.total / self.harness_s if self.harness_s else 0.0

    @property
    def ratio(self) -> float:
        return self.harness_per_s / self.reference_per_s if self.reference_per_s else 0.0

    @property
    def agreement(self) -> float:
        return 100.0 * self.agree / self.total if self.total else 0.0

    def lines(self) -> list[str]:
        subset = "all examples" if self.limit is None else f"the first {self.limit} per task"
        tasks = ", ".join(f"{task} {count}" for task, count in self.examples.items())
        return [
            f"{self.suite} on {self.device}: {self.total} examples ({subset}: {tasks}), "
            "each task scored by its own expert",
            f"reference  padded to {self.max_length}, batch {REFERENCE_BATCH_SIZE}, fp32: "
            f"{self.reference_per_s:10.2f} examples/s  ({self.reference_tokens} tokens)",
            f"harness    bucketed, batch {self.harness_batch_size}, {self.harness_dtype}: "
            f"{self.harness_per_s:10.2f} examples/s  ({self.harness_tokens} tokens)",
            f"speed-up: {self.ratio:.1f}x",
            f"predictions agree on {self.agree}/{self.total} ({self.agreement:.2f}%); "
            f"accuracy reference {self._accuracy(self.reference_correct):.2f}%, "
            f"harness {self._accuracy(self.harness_correct):.2f}%",
        ]

    def _accuracy(self, correct: int) -> float:
        return 100.0 * correct / self.total if self.total else 0.0


def describe(result: TextBenchResult) -> dict[str, Any]:
    return {
        **result.__dict__,
        "total": result.total,
        "reference_examples_per_s": result.reference_per_s,
        "harness_examples_per_s": result.harness_per_s,
        "ratio": result.ratio,
        "agreement": result.agreement,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def reference_predictions(
    classifier: torch.nn.Module,
    split: TokenizedSplit,
    *,
    pad_id: int,
    max_length: int,
    device: torch.device,
) -> tuple[torch.Tensor, float]:
    """Every example padded to ``max_length``, batches of 8 in order, fp32: (predictions,
    seconds). The first batch runs once untimed (kernel and allocator set-up)."""
    classifier = classifier.float().to(device).eval()
    padded = np.full((len(split), max_length), pad_id, dtype=np.int64)
    mask = np.zeros((len(split), max_length), dtype=np.int64)
    for row, ids in enumerate(split.ids):
        padded[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    ids_all, mask_all = torch.from_numpy(padded), torch.from_numpy(mask)

    def run(start: int) -> torch.Tensor:
        stop = start + REFERENCE_BATCH_SIZE
        ids = ids_all[start:stop].to(device)
        attention = mask_all[start:stop].to(device)
        return classifier(input_ids=ids, attention_mask=attention).logits.argmax(dim=-1)

    run(0)
    _sync(device)
    tick = time.perf_counter()
    predicted = [run(start) for start in range(0, len(split), REFERENCE_BATCH_SIZE)]
    result = torch.cat(predicted).cpu()
    _sync(device)
    return result, time.perf_counter() - tick


def harness_predictions(
    model: torch.nn.Module,
    head: torch.nn.Module,
    split: TokenizedSplit,
    *,
    pad_id: int,
    bucketing: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, float]:
    """The suite's bucketed path: (predictions in example order, seconds). One batch
    runs once untimed first."""
    groups = bucket_groups(split.lengths(), **bucketing)
    warm = bucketed_batches(split, pad_id=pad_id, **bucketing)
    predict(model, head, [next(iter(warm))], device=device, dtype=dtype)
    _sync(device)
    tick = time.perf_counter()
    batches = bucketed_batches(split, pad_id=pad_id, **bucketing)
    predicted, _ = predict(model, head, batches, device=device, dtype=dtype)
    _sync(device)
    seconds = time.perf_counter() - tick
    order = np.concatenate(groups)
    in_order = torch.empty_like(predicted)
    in_order[torch.from_numpy(order)] = predicted
    return in_order, seconds


def bench_text_eval(
    suite_name: str,
    *,
    device: str | torch.device = "cpu",
    mirror: Path | None = None,
    limit: int | None = None,
    only: list[str] | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = False,
) -> TextBenchResult:
    """Measure both pipelines on the first ``limit`` test examples of every task."""
    from harness.cache import cache_dir
    from harness.registry import SUITES
    from harness.suite import SuiteContext

    entry = SUITES.get(suite_name)
    generation = hasattr(entry.obj, "bench_texts")
    missing = [name for name in TEXT_PROTOCOL if not hasattr(entry.obj, name)]
    if missing and not generation:
        raise HarnessError(
            f"bench eval --tasks {suite_name}: {suite_name} is not a token-classification "
            f"suite (it lacks {', '.join(missing)}); text suites such as glue-gpt2 are"
        )
    device = torch.device(device)
    suite = entry.obj(
        SuiteContext(
            mirror=mirror,
            cache_dir=cache_dir(),
            device=device,
            progress=progress,
            options=entry.resolve_params(options or {}),
        )
    )
    suite.select_tasks(only)
    suite.prepare()
    if generation:
        return _bench_generation(suite, suite_name, device, limit)
    pool = suite.pool()
    bucketing = dict(suite.eval_bucketing)
    dtype = suite.eval_dtype
    result = TextBenchResult(
        suite_name,
        str(device),
        limit,
        _DTYPE_NAMES[dtype],
        int(bucketing["batch_size"]),
        int(suite.max_length),
    )
    for task in suite.tasks:
        split = suite.tokens(task, "test")
        count = len(split) if limit is None else min(limit, len(split))
        split = split.subset(np.arange(count))
        labels = torch.as_tensor(np.asarray(split.labels))
        model = suite.build_model(pool.expert_state(task))
        ours, seconds = harness_predictions(
            model,
            suite.head(task),
            split,
            pad_id=suite.pad_id,
            bucketing=bucketing,
            device=device,
            dtype=dtype,
        )
        result.harness_s += seconds
        del model
        reference, seconds = reference_predictions(
            suite.reference_classifier(task),
            split,
            pad_id=suite.pad_id,
            max_length=suite.max_length,
            device=device,
        )
        result.reference_s += seconds
        result.examples[task] = count
        result.agree += int((ours == reference).sum())
        result.harness_correct += int((ours == labels).sum())
        result.reference_correct += int((reference == labels).sum())
        groups = bucket_groups(split.lengths(), **bucketing)
        lengths = split.lengths()
        result.harness_tokens += int(sum(len(g) * lengths[g].max() for g in groups))
        result.reference_tokens += count * suite.max_length
    return result


def _bench_generation(
    suite: Any, suite_name: str, device: torch.device, limit: int | None
) -> TextBenchResult:
    """Text-to-text suites (glue-flan-t5): the suite's ``bench_texts`` generates with its
    own path and with FusionBench's (``generate`` on prompts padded to 512, batch 8,
    fp32); agreement is on the generated strings, correctness is exact match."""
    size = int(suite.options["eval_batch_size"]) or (128 if device.type == "cuda" else 32)
    dtype = _DTYPE_NAMES[suite.eval_dtype]
    result = TextBenchResult(suite_name, str(device), limit, dtype, size, 512)
    for task in suite.tasks:
        split = suite.tokenized(task, "test")
        count = len(split) if limit is None else min(limit, len(split))
        split = split.subset(np.arange(count))
        ours, targets, seconds = suite.bench_texts(task, split, reference=False)
        result.harness_s += seconds
        theirs, _, seconds = suite.bench_texts(task, split, reference=True)
        result.reference_s += seconds
        result.examples[task] = count
        result.agree += sum(a == b for a, b in zip(ours, theirs))
        result.harness_correct += sum(a == t for a, t in zip(ours, targets))
        result.reference_correct += sum(a == t for a, t in zip(theirs, targets))
        lengths = split.lengths()
        groups = bucket_groups(lengths, batch_size=size, shuffle_seed=None)
        result.harness_tokens += int(sum(len(g) * lengths[g].max() for g in groups))
        result.reference_tokens += count * 512
    return result
