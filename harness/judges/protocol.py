"""CrossEval's judging protocol (Zhong et al., "Law of the Weakest Link", arXiv 2409.19951).

A judge sees a 1–5 rubric, the user prompt (and the attached text, where there is one), the
reference responses with both human ratings and explanations, and the response to rate; it
must end with ``Score: X/5``. An answer without a parsable score in 1–5 is asked again, up
to five attempts in all, each retry adding a reminder to the prompt (the paper's code does
the same). Judges decode greedily (temperature 0). A 1–5 score ``s`` is reported on the
paper's 1–100 scale, ``(s − 1) · 24.75 + 1``.

What this module owns: the request and judgment types, the prompt text, parsing, the
retry loop and the rescaling. Judges (``harness.judges.local``, ``.endpoint``,
``.replay``) only turn a (system, user) prompt pair into text.

Deviations from the paper's code, on purpose: the wording of the prompts is the harness's
own (same structure: rubric, user prompt, references with ratings and explanations, the
response, a fixed evaluation outline ending in the score line); the score line is found
anywhere in the answer (the last one wins) instead of only under an "Evaluation Score"
heading; images and tools are never given to a judge here (prompts that need them are
filtered before judging, with a count).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from harness.cache import content_key

if TYPE_CHECKING:
    from harness.judges.base import Judge

#: Bump when the prompt text, parsing or retry rule changes: it keys the judgment cache.
PROTOCOL_VERSION = "crosseval-judge-1"
MAX_ATTEMPTS = 5
SCALE_STEP = 24.75  # (s - 1) * 24.75 + 1 maps 1..5 onto 1..100

#: outcomes of one judgment; only "scored" carries a score
SCORED = "scored"
UNPARSABLE = "unparsable"  # no "Score: X/5" in 1..5 after MAX_ATTEMPTS answers
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
FAILED = "failed"  # the judge answered with an error (HTTP 4xx other than 429, ...)
MISSING = "missing"  # a replay judge has no stored judgment for this item
OUTCOMES = (SCORED, UNPARSABLE, TIMEOUT, RATE_LIMITED, FAILED, MISSING)
#: outcomes that are final for a deterministic judge, so the cache keeps them; the others
#: (a timeout, a rate limit) are tried again by the next run
FINAL_OUTCOMES = (SCORED, UNPARSABLE)

RUBRIC = """You are an expert evaluator of AI model responses. Rate the response on a 1-5 scale:

- 5/5 (Amazing): flawless; it could hardly be improved.
- 4/5 (Pretty Good): quite good, with room for minor improvements.
- 3/5 (Okay): middle of the road; it could be improved in several ways.
- 2/5 (Pretty Bad): major problems of helpfulness, truthfulness or safety.
- 1/5 (Horrible): a terrible response; you would warn others against a model that writes it."""

OUTLINE = """Write your evaluation in this form:

#### User Prompt Analysis
- The key requirements and goals of the user prompt.

#### Reference Examples Insights
- The scoring pattern of the reference ratings and how many points each kind of issue cost.

#### Model Response Evaluation
- Pros: the strengths of the response.
- Cons: its weaknesses, with the points deducted for each.

#### Holistic Assessment
- Weigh the strengths against the deductions (do not penalise one issue twice) and explain \
the score.

#### Evaluation Score
Score: [X]/5"""

OUTLINE_NO_REFERENCES = OUTLINE.replace(
    "#### Reference Examples Insights\n- The scoring pattern of the reference ratings and how "
    "many points each kind of issue cost.\n\n",
    "",
)

RETRY_FORMAT = " End your evaluation with the line 'Score: X/5', X a whole number from 1 to 5."
RETRY_RANGE = " The score must be on the scale from 1 to 5."

_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*\[?\s*(\d+(?:\.\d+)?)\s*\]?\s*/\s*5", re.IGNORECASE)


@dataclass(frozen=True)
class Reference:
    """A reference response with its two human ratings (1–5) and their explanations."""

    response: str
    ratings: tuple[float, ...]
    explanations: tuple[str, ...]


@dataclass(frozen=True)
class JudgeRequest:
    """Everything a judge sees for one response (plus ids that say what it is)."""

    prompt: str
    response: str
    references: tuple[Reference, ...] = ()
    attachment: str | None = None  # attached text (long documents); never a URL or image
    capability: str = ""
    item_id: str = ""  # e.g. the CrossEval prompt_id and which response; not shown

    def key(self) -> str:
        """What identifies the request for caching: everything the judge sees."""
        seen = asdict(self)
        seen.pop("item_id")
        return content_key(PROTOCOL_VERSION, seen)


@dataclass
class Judgment:
    """One judged response: the 1–5 score (None unless scored), the judge's last answer."""

    outcome: str
    score: float | None = None
    text: str = ""
    attempts: int = 0
    detail: str = ""  # why it failed, in words without secrets

    @property
    def rescaled(self) -> float | None:
        return rescale(self.score) if self.score is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "score": self.score,
            "text": self.text,
            "attempts": self.attempts,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Judgment:
        return cls(
            outcome=str(data["outcome"]),
            score=None if data.get("score") is None else float(data["score"]),
            text=str(data.get("text", "")),
            attempts=int(data.get("attempts", 0)),
            detail=str(data.get("detail", "")),
        )


@dataclass
class JudgeUnavailable(Exception):
    """A judge could not answer (timeout, rate limit past its budget, an error reply): a
    counted outcome of the item, never a crash of the run."""

    outcome: str
    detail: str = ""
    attempts: int = field(default=1)

    def __str__(self) -> str:
        return f"{self.outcome}: {self.detail}"


def rescale(score: float) -> float:
    """A 1–5 score on CrossEval's 1–100 scale."""
    return (float(score) - 1.0) * SCALE_STEP + 1.0


def parse_score(text: str) -> float | None:
    """The last ``Score: X/5`` of a judge's answer, or None when there is none."""
    found = _SCORE.findall(text or "")
    return float(found[-1]) if found else None


def _format_rating(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def user_prompt(request: JudgeRequest, max_attachment_chars: int | None = None) -> str:
    """The user message: attachment (cut to the judge's limit, as the paper truncates long
    documents), prompt, references, response, outline."""
    parts = []
    if request.attachment:
        attachment = request.attachment.strip()
        if max_attachment_chars is not None and len(attachment) > max_attachment_chars:
            attachment = attachment[:max_attachment_chars]
        parts.append(f"[Attached]:\n{attachment}")
    parts.append(f"[User Prompt]:\n{request.prompt.strip()}")
    if request.references:
        lines = ["Calibrate your evaluation on these rated reference responses:"]
        for number, reference in enumerate(request.references, 1):
            lines.append(f"\n[Reference Example {number}]:\nModel Response: {reference.response}")
            pairs = zip(reference.ratings, reference.explanations)
            for index, (rating, explanation) in enumerate(pairs, 1):
                lines.append(
                    f"Rating {index}: {_format_rating(rating)}/5 | "
                    f"Explanation {index}: {str(explanation).strip()}"
                )
        lines.append(
            "\nUse them as the benchmark for your scale and keep your scoring consistent "
            "with them. The response to evaluate:"
        )
        parts.append("\n".join(lines))
    else:
        parts.append("The response to evaluate:")
    parts.append(f"[Model Response to be Evaluated]:\n{request.response.strip()}")
    parts.append(OUTLINE if request.references else OUTLINE_NO_REFERENCES)
    parts.append("Be thorough and fair, and consistent with the reference ratings.")
    return "\n\n".join(parts)


def judge_with_protocol(judge: Judge, request: JudgeRequest) -> Judgment:
    """Ask ``judge`` up to :data:`MAX_ATTEMPTS` times until it gives a score in 1–5.

    A :class:`JudgeUnavailable` from the judge ends the item with that outcome (a timeout
    or a rate limit the judge's own retries did not get past)."""
    user = user_prompt(request, judge.max_attachment_chars())
    text = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            text = judge.complete(RUBRIC, user)
        except JudgeUnavailable as error:
            return Judgment(error.outcome, None, text, attempt, error.detail)
        score = parse_score(text)
        if score is not None and 1.0 <= score <= 5.0:
            return Judgment(SCORED, score, text, attempt)
        hint = RETRY_RANGE if score is not None else RETRY_FORMAT
        if hint not in user:
            user += hint
    return Judgment(UNPARSABLE, None, text, MAX_ATTEMPTS, "no 'Score: X/5' in 1-5")


def outcome_counts(judgments: Sequence[Judgment]) -> dict[str, int]:
    """How many judgments ended in each outcome (every outcome listed, zeros included)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for judgment in judgments:
        counts[judgment.outcome] = counts.get(judgment.outcome, 0) + 1
    return counts
