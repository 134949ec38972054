"""The judge meta-evaluation of CrossEval (Zhong et al. 2024, §3.2 and Table 2).

For every prompt and each of its three human-rated responses, the judge sees the other two
responses as references (with both ratings and explanations, in the paper's order: for
response i, responses i+1 and i+2 mod 3) and scores response i. Its scores are compared
with the mean of the two human ratings by Pearson, Spearman and Kendall correlation
(``scipy.stats``), over all responses and per capability. The paper's numbers for its
judges are listed beside the measured ones (:data:`PUBLISHED`).

Responses without a rating, or empty, are counted and left out, as are prompts whose
attachment the judge cannot be shown (images, for the text-only judges here). Long
Context prompts show the judge the attached text (needed from the attachments directory;
``attachment_missing`` otherwise); other attachments are not shown, as in the paper's
code for judges without a code interpreter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import content_key, write_json_atomic
from harness.judges import make_judge
from harness.judges.cached import CachedJudge
from harness.judges.protocol import PROTOCOL_VERSION, SCORED, JudgeRequest, outcome_counts
from harness.progress import progress_bar
from harness.weights.hub import Requirement, resolve_all
from tasks.text.crosseval import data

RESULT_KIND = "crosseval-judge-meta"
PAPER_TABLE = "https://arxiv.org/abs/2409.19951 (Table 2: judges with two reference examples)"


@dataclass(frozen=True)
class PublishedJudge:
    judge: str
    pearson: float
    spearman: float
    kendall: float


PUBLISHED = (
    PublishedJudge("GPT-4o", 0.697, 0.679, 0.560),
    PublishedJudge("Claude 3.5 Sonnet", 0.696, 0.676, 0.550),
    PublishedJudge("GPT-4o-mini", 0.621, 0.609, 0.508),
)


def correlations(human: list[float], judge: list[float]) -> dict[str, Any]:
    """Pearson, Spearman and Kendall (None where undefined: < 2 points or no variance)."""
    from scipy import stats

    result: dict[str, Any] = {"n": len(human), "pearson": None, "spearman": None, "kendall": None}
    if len(human) < 2 or np.ptp(human) == 0 or np.ptp(judge) == 0:
        return result
    result["pearson"] = float(stats.pearsonr(human, judge)[0])
    result["spearman"] = float(stats.spearmanr(human, judge)[0])
    result["kendall"] = float(stats.kendalltau(human, judge)[0])
    return result


def meta_evaluate(
    judge_spec: str,
    *,
    mirror: Path | None = None,
    capabilities: list[str] | None = None,
    limit: int | None = None,
    attachments: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the meta-evaluation; returns the result (see :func:`write_result`)."""
    (dataset,) = resolve_all(
        [Requirement(data.DATASET, "datasets", (data.FILE, "attachments/*"))],
        mirror=mirror,
        needed_by="harness judge meta",
    )
    items = data.load_items(Path(dataset.path) / data.FILE)
    chosen_caps = capabilities or list(data.CAPABILITIES)
    unknown = [c for c in chosen_caps if c not in data.CAPABILITIES]
    if unknown:
        from harness.errors import UnknownNameError

        raise UnknownNameError(
            f"CrossEval has no capability {unknown[0]!r}; its capabilities: "
            f"{', '.join(data.CAPABILITIES)}"
        )
    judge = CachedJudge(make_judge(judge_spec, mirror=mirror))
    directory = attachments or Path(dataset.path) / "attachments"
    filtered: Counter = Counter()
    jobs: list[tuple[data.Item, int, JudgeRequest, float]] = []
    for capability in chosen_caps:
        rows = [item for item in items if item.capability == capability]
        for item in rows[:limit] if limit else rows:
            attachment = data.read_attachment(item.attached_file, directory)
            text = None
            if attachment.kind == "image" and not judge.inner.accepts_images:
                filtered["image"] += 3
                continue
            if "long_context" in capability:
                if attachment.kind in ("missing", "binary"):
                    reason = (
                        "attachment_missing"
                        if attachment.kind == "missing"
                        else "attachment_unsupported"
                    )
                    filtered[reason] += 3
                    continue
                text = attachment.text
            for i, reference in enumerate(item.references):
                if not reference.response:
                    filtered["empty_response"] += 1
                    continue
                if not reference.ratings:
                    filtered["no_human_rating"] += 1
                    continue
                others = (item.references[(i + 1) % 3], item.references[(i + 2) % 3])
                request = JudgeRequest(
                    prompt=item.prompt,
                    response=reference.response,
                    references=others,
                    attachment=text,
                    capability=item.capability_name,
                    item_id=f"{item.prompt_id}/response_{i + 1}",
                )
                jobs.append((item, i, request, float(np.mean(reference.ratings))))
    per_item, judgments = [], []
    batch = max(1, 8 * judge.inner.concurrency)  # progress in steps, requests in parallel
    starts = range(0, len(jobs), batch)
    for start in progress_bar(starts, desc="judge meta", enabled=progress):
        chunk = jobs[start : start + batch]
        judgments += judge.judge_all([request for _, _, request, _ in chunk])
    for (item, i, _, human), judgment in zip(jobs, judgments):
        per_item.append(
            {
                "prompt_id": item.prompt_id,
                "capability": item.capability,
                "response": i + 1,
                "human_mean": human,
                "judge_score": judgment.score,
                "outcome": judgment.outcome,
            }
        )
    scored = [row for row in per_item if row["outcome"] == SCORED]
    overall = correlations([r["human_mean"] for r in scored], [r["judge_score"] for r in scored])
    per_capability = {}
    for capability in chosen_caps:
        rows = [r for r in scored if r["capability"] == capability]
        if rows:
            per_capability[capability] = correlations(
                [r["human_mean"] for r in rows], [r["judge_score"] for r in rows]
            )
    return {
        "kind": RESULT_KIND,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "judge": judge.inner.describe(),
        "protocol": PROTOCOL_VERSION,
        "references_shown": 2,
        "dataset": {
            "id": data.DATASET,
            "source": dataset.source,
            "revision": dataset.revision,
            "identity": dataset.identity(),
        },
        "capabilities": chosen_caps,
        "limit": limit,
        "responses": len(per_item),
        "filtered": dict(filtered),
        "judge_outcomes": outcome_counts(judgments),
        "judge_calls": judge.asked,
        "judgments_reused": judge.reused,
        "overall": overall,
        "per_capability": per_capability,
        "published": {
            "source": PAPER_TABLE,
            "judges": [p.__dict__ for p in PUBLISHED],
        },
        "per_item": per_item,
    }


def result_name(result: dict[str, Any]) -> str:
    identity = result["judge"]["identity"]
    key = content_key(identity, result["protocol"], result["capabilities"], result["limit"])
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in identity.split("?")[0])
    return f"{slug[:60]}__{key[:8]}.json"


def write_result(result: dict[str, Any], directory: Path) -> Path:
    """The result as one JSON file (written atomically) in ``directory``."""
    path = Path(directory) / result_name(result)
    write_json_atomic(path, result)
    return path
