"""A judge that replays stored judgments (``--judge replay:<file>``).

Judgments are looked up by what was judged: the SHA-256 of the stripped prompt and of the
stripped response. Sources:

- a JSON-lines file, one judgment a line: ``prompt`` and ``response`` (or their
  ``prompt_sha256`` / ``response_sha256``), ``score`` (1–5) and optionally ``text``; the
  harness's own judgment cache files have this form, so earlier runs replay as they are;
- ``replay:crosseval-human``: CrossEval's human ratings (the mean of the two ratings of each
  reference response), read from ``MingZhong/crosseval`` (hub or ``--mirror``).

A response with no stored judgment is a counted ``missing`` outcome, not an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.cache import file_sha256
from harness.errors import HarnessError
from harness.judges.base import Judge
from harness.judges.protocol import MISSING, SCORED, JudgeRequest, Judgment


def text_sha256(text: str) -> str:
    return hashlib.sha256(str(text).strip().encode()).hexdigest()


class ReplayJudge(Judge):
    kind = "replay"
    cacheable = False

    def __init__(self, judgments: dict[tuple[str, str], tuple[float, str]], source: str) -> None:
        self.judgments = judgments
        self.source = source

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str, float, str]], source: str) -> ReplayJudge:
        """From (prompt, response, score, text) tuples."""
        table = {
            (text_sha256(prompt), text_sha256(response)): (float(score), text)
            for prompt, response, score, text in pairs
        }
        return cls(table, source)

    @classmethod
    def from_jsonl(cls, path: Path) -> ReplayJudge:
        path = Path(path).expanduser()
        if not path.is_file():
            raise HarnessError(f"replay judge: no file {path}; give a JSON-lines file of judgments")
        table: dict[tuple[str, str], tuple[float, str]] = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry: dict[str, Any] = json.loads(line)
                prompt = entry.get("prompt_sha256") or text_sha256(entry["prompt"])
                response = entry.get("response_sha256") or text_sha256(entry["response"])
                score = entry["score"]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise HarnessError(
                    f"{path} line {number} is not a judgment: each line needs prompt (or "
                    "prompt_sha256), response (or response_sha256) and score"
                ) from None
            if score is None:
                continue  # an unparsable judgment kept by a cache: nothing to replay
            table[(prompt, response)] = (float(score), str(entry.get("text", "")))
        return cls(table, f"{path.name}@sha256:{file_sha256(path)[:16]}")

    @property
    def identity(self) -> str:
        return f"replay:{self.source}"

    def judge(self, request: JudgeRequest) -> Judgment:
        found = self.judgments.get((text_sha256(request.prompt), text_sha256(request.response)))
        if found is None:
            return Judgment(MISSING, None, "", 0, "no stored judgment for this response")
        score, text = found
        return Judgment(SCORED, score, text, 0)
