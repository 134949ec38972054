"""What every judge is: something that turns a (rubric, user prompt) pair into text.

A judge has an ``identity`` (what keys its cached judgments: kind, model, revision and the
settings that change its answers; never a credential) and answers ``complete(system,
user)`` greedily. :meth:`Judge.judge` runs CrossEval's protocol on top (retries, parsing;
``harness.judges.protocol``); a replay judge overrides it to look stored judgments up.
A judge that cannot answer raises ``JudgeUnavailable`` with the outcome to count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from harness.judges.protocol import JudgeRequest, Judgment, judge_with_protocol


class Judge(ABC):
    """A judge of one kind (``local``, ``openai``, ``replay``)."""

    kind: ClassVar[str] = ""
    #: whether judgments are worth caching (a replay judge's are already on disk)
    cacheable: ClassVar[bool] = True
    #: whether the judge can be shown images (none of the harness's judges are, yet)
    accepts_images: ClassVar[bool] = False
    #: how many requests may be in flight at once (an endpoint serves several)
    concurrency: int = 1

    @property
    @abstractmethod
    def identity(self) -> str:
        """Kind, model and the settings that change answers; no credentials."""

    def complete(self, system: str, user: str) -> str:
        """The judge's greedy answer to one rubric + user prompt."""
        raise NotImplementedError(f"{self.kind} judges do not generate")

    def judge(self, request: JudgeRequest) -> Judgment:
        """One response judged with CrossEval's protocol."""
        return judge_with_protocol(self, request)

    def max_attachment_chars(self) -> int | None:
        """How much attached text the judge can be shown (None: no limit known)."""
        return None

    def describe(self) -> dict[str, Any]:
        """For records and result files."""
        return {"kind": self.kind, "identity": self.identity}
