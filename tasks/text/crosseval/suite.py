"""crosseval: CrossEval's 14 capabilities, a merged causal LM's responses scored by a judge.

For every prompt of a capability the model writes a response (greedy, the tokenizer's
chat template where there is one, ``harness.evaluation.causal_generation``), and a judge
(``--judge``: a local model, an OpenAI-compatible endpoint, or stored judgments;
``harness.judges``) scores it 1–5 with the paper's protocol, seeing the three human-rated
reference responses. A capability's ``score`` is the mean over its judged prompts on the
paper's 1–100 scale. Each cross capability's details put it against its two parents, and
the record's ``suite.summary`` holds the weakest-link statistics
(``harness.evaluation.weakest_link``).

Prompts the model or the judge cannot take are filtered and counted per reason, never
silently dropped: ``image`` (an image attachment; the models here read text only),
``needs_tools`` (Tool Use prompts need web search or a code interpreter; ``tools=plain``
asks for a plain-text answer instead), ``attachment_missing`` (the attachment is not in
the attachments directory), ``attachment_unsupported`` (a binary file), ``too_long``
(prompt and attachment exceed the model's context with room for the answer). A capability
left with no prompt is not scored and the summary says why. A judge that gives no score
(``unparsable`` after five answers, ``timeout``, ``rate_limited``, ``failed``) is counted
in the task's ``judge_outcomes``; the score is the mean over scored responses.

Generations and judgments are cached as they finish (``HARNESS_CACHE/generations``,
``HARNESS_CACHE/judgments``), keyed by the model's weights fingerprint, the prompt, the
judge's identity and the protocol version, so an interrupted run resumes without paying
for anything twice.

CrossEval is a test set only. ``validation=carve`` holds out a fixed 10% of each
capability's prompts for hyperparameter selection (and scores the other 90%); by default
there is no validation split, so fix hyperparameters (``--set``) or use ``--select
defaults``.

The checkpoint set (``base=``, ``experts=name=hub-id,...``) defaults to MergeBench's
Llama-3.2-3B experts (repository names as the paper gives them, not checked against the
hub listing); ``capability_experts=`` says which expert stands for which individual
capability: a task's normalised score is relative to the best of its experts (a cross
capability's: its parents' experts; a capability without one: every expert).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.cache import atomic_path, cache_dir, content_key
from harness.errors import HarnessError
from harness.evaluation.causal_generation import (
    format_prompt,
    generate_greedy,
    has_chat_template,
    token_count,
)
from harness.evaluation.weakest_link import weakest_link
from harness.judges import make_judge
from harness.judges.cached import CachedJudge
from harness.judges.protocol import PROTOCOL_VERSION, SCORED, JudgeRequest, outcome_counts
from harness.keyed_log import KeyedLog
from harness.progress import note
from harness.registry import Param, register_suite
from harness.splits import validation_indices
from harness.suite import Artifact, Suite, SuiteContext
from harness.weights.fingerprint import module_fingerprint
from harness.weights.hub import Requirement, ResolvedArtifact, resolve_all
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.llm.models import ResolvedCausalLm
from tasks.text.crosseval import data, models

DEFAULT_BASE = "meta-llama/Llama-3.2-3B"
DEFAULT_EXPERTS = ",".join(
    f"{skill}=MergeBench/Llama-3.2-3B_{skill}"
    for skill in ("instruction", "math", "coding", "multilingual")
)
DEFAULT_CAPABILITY_EXPERTS = "english=instruction,reasoning=math,coding=coding,spanish=multilingual"
GENERATION_RECIPE = "crosseval-generate-1"  # bump when prompts or decoding change

PARAMS = {
    "judge": Param("", "the judge (also --judge): local:<id>, openai:<model>?..., replay:<file>"),
    "base": Param(DEFAULT_BASE, "the base model's hub id"),
    "experts": Param(DEFAULT_EXPERTS, "the experts: name=hub-id pairs, comma-separated"),
    "capability_experts": Param(
        DEFAULT_CAPABILITY_EXPERTS,
        "capability=expert pairs: the expert standing for an individual capability",
    ),
    "max_new_tokens": Param(1024, "tokens the model may generate per response", low=1),
    "limit": Param(0, "score at most N prompts per capability (0: all)", low=0),
    "tools": Param(
        "filter", "Tool Use prompts: filter (counted) or plain", choices=("filter", "plain")
    ),
    "attachments": Param(
        "", "directory of attachment files (default: attachments/ beside test.csv)"
    ),
    "gen_batch_size": Param(0, "prompts generated at once (0: 8 on CUDA, 2 on CPU)", low=0),
    "dtype": Param("auto", "generation precision", choices=("auto", "bf16", "fp16", "fp32")),
    "validation": Param(
        "none",
        "none, or carve: a fixed 10% of each capability for selection",
        choices=("none", "carve"),
    ),
}


@register_suite("crosseval", params=PARAMS, reference=data.REFERENCE)
class CrossEval(ResolvedCausalLm, Suite):
    """CrossEval (Zhong et al. 2024): 14 capabilities, responses judged against rated references."""

    tasks = [*data.INDIVIDUAL, *data.CROSS]  # individual first: parents score before crosses
    metric = "score"
    tasks_are_experts = False  # experts come from options; capabilities are scored

    def __init__(self, context: SuiteContext) -> None:
        super().__init__(context)
        self.tasks = list(type(self).tasks)
        self.options = {name: param.default for name, param in PARAMS.items()}
        self.options.update(context.options)
        if not str(self.options["judge"]).strip():
            raise HarnessError(
                "crosseval needs a judge: --judge local:<hub id>, --judge openai:<model> or "
                "--judge replay:<judgments.jsonl>"
            )
        self.expert_ids = models.parse_pairs(
            self.options["experts"], "experts", "math=org/math-model,coding=org/coder"
        )
        if not self.expert_ids:
            raise HarnessError(
                "crosseval needs at least one expert: --suite-set experts=name=org/id"
            )
        self.capability_experts = models.parse_pairs(
            self.options["capability_experts"], "capability_experts", "reasoning=math"
        )
        for capability, expert in self.capability_experts.items():
            if capability not in data.INDIVIDUAL or expert not in self.expert_ids:
                raise HarnessError(
                    f"capability_experts: {capability}={expert} needs an individual capability "
                    f"({', '.join(data.INDIVIDUAL)}) and an expert ({', '.join(self.expert_ids)})"
                )
        self.reference_experts: dict[str, tuple[str, ...]] = {}
        self._base: ResolvedArtifact | None = None
        self._experts: dict[str, ResolvedArtifact] = {}
        self._dataset: ResolvedArtifact | None = None
        self._items: dict[str, list[data.Item]] = {}
        self._kept: dict[str, list[tuple[data.Item, str | None]]] = {}
        self._filtered: dict[str, Counter] = {}
        self._filtered_ids: dict[str, list[dict[str, str]]] = {}
        self._dropped: dict[str, dict[str, int]] = {}
        self._tokenizer: Any = None
        self._config: Any = None
        self._judge: CachedJudge | None = None
        self._details: dict[str, dict[str, Any]] = {}
        self._scores: dict[str, dict[str, float]] = {}
        self._generated = 0
        self._calls = (0, 0)

    # ------------------------------------------------------------------ identity
    @property
    def checkpoint_set(self) -> str:
        return f"{self.options['base']}+{len(self.expert_ids)} experts"

    def _reference_experts(self, task: str) -> tuple[str, ...]:
        standing = self.capability_experts
        if task in data.PARENTS:
            found = [standing[p] for p in data.PARENTS[task] if p in standing]
            chosen = tuple(dict.fromkeys(found))
        else:
            chosen = (standing[task],) if task in standing else ()
        return chosen or tuple(self.expert_ids)

    # ------------------------------------------------------------------ prepare
    def required_artifacts(self) -> list[Requirement]:
        base = Requirement(str(self.options["base"]), "models", models.MODEL_FILES)
        experts = [Requirement(i, "models", models.MODEL_FILES) for i in self.expert_ids.values()]
        dataset = Requirement(data.DATASET, "datasets", (data.FILE, "attachments/*"))
        return [base, *experts, dataset]

    def prepare(self) -> None:
        from transformers import AutoConfig

        resolved = resolve_all(
            self.required_artifacts(), mirror=self.context.mirror, needed_by=self.name
        )
        self._base, self._dataset = resolved[0], resolved[-1]
        self._experts = dict(zip(self.expert_ids, resolved[1:-1]))
        for name, expert in self._experts.items():
            models.check_expert(self._base, name, expert)
        self._tokenizer = models.load_tokenizer(self._base)
        self._config = AutoConfig.from_pretrained(str(self._base.path), trust_remote_code=False)
        self._judge = CachedJudge(
            make_judge(str(self.options["judge"]), mirror=self.context.mirror)
        )
        items = data.load_items(Path(self._dataset.path) / data.FILE)
        for task in self.tasks:
            self._items[task] = [item for item in items if item.capability == task]
            self._filter(task)
        scorable = [task for task in self.tasks if self._kept[task]]
        for task in self.tasks:
            if task not in scorable:
                self._dropped[task] = dict(self._filtered[task])
                reasons = ", ".join(f"{n} {why}" for why, n in self._filtered[task].items())
                note(f"crosseval: {task} has no prompt this run can take ({reasons or 'no rows'})")
        if not scorable:
            raise HarnessError(
                "crosseval: no chosen capability has a prompt this model and judge can take "
                f"({', '.join(self.tasks)} all filtered); choose others with --only"
            )
        self.tasks = scorable
        self.reference_experts = {task: self._reference_experts(task) for task in self.tasks}

    @property
    def attachments_dir(self) -> Path:
        given = str(self.options["attachments"]).strip()
        if given:
            return Path(given).expanduser()
        assert self._dataset is not None
        return Path(self._dataset.path) / "attachments"

    def _filter(self, task: str) -> None:
        """Split a capability's prompts into those this run can take and counted others."""
        kept, filtered, ids = [], Counter(), []
        window = int(getattr(self._config.get_text_config(), "max_position_embeddings", 0) or 2048)
        budget = window - int(self.options["max_new_tokens"])
        for item in self._items[task]:
            attachment = data.read_attachment(item.attached_file, self.attachments_dir)
            reason = None
            if "tool_" in task and self.options["tools"] == "filter":
                reason = "needs_tools"
            elif attachment.kind == "image":
                reason = "image"
            elif attachment.kind == "missing":
                reason = "attachment_missing"
            elif attachment.kind == "binary":
                reason = "attachment_unsupported"
            elif token_count(self._tokenizer, self._model_text(item, attachment.text)) > budget:
                reason = "too_long"
            if reason is None:
                kept.append((item, attachment.text))
            else:
                filtered[reason] += 1
                ids.append({"prompt_id": item.prompt_id, "reason": reason})
        self._kept[task], self._filtered[task], self._filtered_ids[task] = kept, filtered, ids

    def _model_text(self, item: data.Item, attachment: str | None) -> str:
        user = item.prompt.strip()
        if attachment:
            user = f"[Attached]:\n{attachment.strip()}\n\n{user}"
        return format_prompt(self._tokenizer, user)

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        base = Checkpoint(self.base.path, self.base.id)
        experts = {name: Checkpoint(a.path, a.id) for name, a in self._experts.items()}
        return ExpertPool(base, experts)

    def split_items(self, task: str, split: str) -> list[tuple[data.Item, str | None]]:
        """A capability's usable prompts in a split (test: all, or 90% with a carve)."""
        kept = self._kept[task]
        if split == "test" and self.options["validation"] == "none":
            return kept
        if split not in ("test", "validation"):
            raise HarnessError(f"crosseval has no {split!r} split: it is a test set only")
        if self.options["validation"] == "none":
            raise HarnessError(
                "crosseval has no validation split (CrossEval is a test set): fix the method's "
                "hyperparameters with --set, use --select defaults, or --suite-set validation=carve"
            )
        rest, held = validation_indices(len(kept))
        return [kept[i] for i in (held if split == "validation" else rest)]

    @property
    def splits(self) -> dict[str, str]:  # type: ignore[override]
        if self.options["validation"] == "carve":
            return {
                "test": "90% of each capability's CrossEval prompts (the rest is validation)",
                "validation": "a fixed 10% of each capability's prompts (seed 42), held out",
            }
        return {"test": "every CrossEval prompt this run can take (see filtered counts)"}

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Generate a response per prompt, judge each; the mean rescaled score."""
        assert self._judge is not None
        chosen = self.split_items(task, split)
        cap = int(self.options["limit"]) or None
        if limit is not None:
            cap = min(cap, limit) if cap else limit
        chosen = chosen[:cap] if cap else chosen
        device = self.context.device
        model = model.to(device).eval()
        texts = [self._model_text(item, attachment) for item, attachment in chosen]
        responses = self._generate(model, texts, f"{task}/{split}")
        asked, reused = self._judge.asked, self._judge.reused
        requests = [
            JudgeRequest(
                prompt=item.prompt,
                response=response,
                references=item.references,
                attachment=attachment,
                capability=item.capability_name,
                item_id=item.prompt_id,
            )
            for (item, attachment), response in zip(chosen, responses)
        ]
        judgments = self._judge.judge_all(requests)
        rows = [(item, r.response, j) for (item, _), r, j in zip(chosen, requests, judgments)]
        scored = [j.rescaled for j in judgments if j.outcome == SCORED]
        counts = outcome_counts(judgments)
        if not scored:
            failures = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            raise HarnessError(
                f"crosseval/{task}: the judge {self._judge.identity} scored none of the "
                f"{len(judgments)} responses ({failures}); judgments so far are cached, "
                "fix the judge and run again"
            )
        self._calls = (self._judge.asked - asked, self._judge.reused - reused)
        score = float(np.mean(scored))
        self._scores.setdefault(split, {})[task] = score
        self._details[task] = self._task_details(task, split, rows, counts, score)
        filtered = sum(self._filtered[task].values())
        return {
            "score": score,
            "n": float(len(scored)),
            "prompts": float(len(chosen)),
            "filtered": float(filtered),
            "judge_failures": float(len(judgments) - len(scored)),
        }

    def _generate(self, model: torch.nn.Module, texts: list[str], desc: str) -> list[str]:
        """Responses, from the cache where this model already wrote them."""
        identity = content_key(
            GENERATION_RECIPE,
            module_fingerprint(model),
            self.base.identity(),
            int(self.options["max_new_tokens"]),
        )
        log = KeyedLog(cache_dir() / "generations" / f"{identity}.jsonl")
        keys = [content_key(text) for text in texts]
        missing = [i for i, key in enumerate(keys) if key not in log]
        self._generated = len(missing)
        size = int(self.options["gen_batch_size"]) or (
            8 if self.context.device.type == "cuda" else 2
        )
        for start in range(0, len(missing), size):  # each batch is on disk before the next
            batch = missing[start : start + size]
            outputs = generate_greedy(
                model,
                self._tokenizer,
                [texts[i] for i in batch],
                max_new_tokens=int(self.options["max_new_tokens"]),
                batch_size=size,
                device=self.context.device,
                desc=desc,
            )
            for index, output in zip(batch, outputs):
                log.append(keys[index], {"response": output})
        return [str(log.get(key)["response"]) for key in keys]  # type: ignore[index]

    def _task_details(
        self,
        task: str,
        split: str,
        rows: list[tuple[data.Item, str, Any]],
        counts: dict[str, int],
        score: float,
    ) -> dict[str, Any]:
        assert self._judge is not None
        samples = self._write_samples(task, split, rows)
        details: dict[str, Any] = {
            "capability": data.CAPABILITIES[task],
            "split": split,
            "judge": self._judge.inner.describe(),
            "protocol": PROTOCOL_VERSION,
            "references_shown": 3,
            "chat_template": has_chat_template(self._tokenizer),
            "max_new_tokens": int(self.options["max_new_tokens"]),
            "prompts": len(rows),
            "filtered": dict(self._filtered[task]),
            "filtered_prompts": self._filtered_ids[task],
            "judge_outcomes": counts,
            "judge_calls": self._calls[0],  # judgments asked of the judge for this task
            "judgments_reused": self._calls[1],  # read back from the cache
            "generated": self._generated,
            "judgment_cache": str(self._judge.path) if self._judge.path else None,
            "per_prompt": [
                {
                    "prompt_id": item.prompt_id,
                    "difficulty": item.difficulty,
                    "outcome": judgment.outcome,
                    "score": judgment.score,
                    "rescaled": judgment.rescaled,
                }
                for item, _, judgment in rows
            ],
            "samples": str(samples),
        }
        if task in data.PARENTS:
            row = weakest_link(self._scores.get(split, {}), {task: data.PARENTS[task]})
            details["weakest_link"] = row["cross"].get(task)
        return details

    def _write_samples(self, task: str, split: str, rows: list) -> Path:
        """Responses and the judge's answers, one JSON line per prompt (a sidecar file)."""
        import json

        assert self._judge is not None
        key = content_key(task, split, self._judge.identity, [r[1] for r in rows])
        path = cache_dir() / "crosseval-samples" / f"{task}-{split}-{key}.jsonl"
        lines = [
            json.dumps(
                {
                    "prompt_id": item.prompt_id,
                    "response": response,
                    **judgment.to_json(),
                    "rescaled": judgment.rescaled,
                },
                ensure_ascii=False,
            )
            for item, response, judgment in rows
        ]
        with atomic_path(path) as temporary:
            temporary.write_text("\n".join(lines) + "\n")
        return path

    def evaluation_details(self, task: str) -> Mapping[str, Any]:
        return self._details.get(task, {})

    def evaluation_summary(self) -> Mapping[str, Any]:
        """The weakest-link statistics over the test scores, and what was not scored."""
        scores = self._scores.get("test", {})
        return {
            "weakest_link": weakest_link(scores, data.PARENTS),
            "unscored_capabilities": self._dropped,
        }

    def artifacts(self) -> list[Artifact]:
        assert self._dataset is not None and self._judge is not None
        found = [Artifact.of("base", self.base)]
        found += [Artifact.of(f"expert:{name}", a) for name, a in self._experts.items()]
        found.append(Artifact.of("dataset:crosseval", self._dataset))
        judge = self._judge.inner
        source = {"openai": "endpoint", "local": "local", "replay": "local"}[judge.kind]
        found.append(Artifact("judge", judge.identity, source))
        return found
