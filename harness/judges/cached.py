"""Judgments cached on disk, so an interrupted run resumes without paying twice.

One append-only JSON-lines file per (judge identity, protocol version) under
``HARNESS_CACHE/judgments/``; an entry is keyed by everything the judge saw (prompt,
attachment, references, response: ``JudgeRequest.key``) and written the moment the
judgment is done (:class:`harness.keyed_log.KeyedLog`). Scored and unparsable judgments
are final and kept; a timeout or a rate limit is not kept, so the next run asks again. The
entries carry the SHA-256 of the prompt and response, so a cache file replays as it is
(``--judge replay:<file>``). No credential is ever part of a key or an entry.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.cache import cache_dir, content_key
from harness.judges.base import Judge
from harness.judges.protocol import (
    FINAL_OUTCOMES,
    PROTOCOL_VERSION,
    JudgeRequest,
    Judgment,
)
from harness.judges.replay import text_sha256
from harness.keyed_log import KeyedLog


def judgment_log_path(judge: Judge, root: Path | None = None) -> Path:
    key = content_key("judgments", judge.identity, PROTOCOL_VERSION)
    return (root or cache_dir() / "judgments") / f"{key}.jsonl"


class CachedJudge:
    """``judge(request)`` through the on-disk cache; counts what was asked and reused."""

    def __init__(self, judge: Judge, root: Path | None = None) -> None:
        self.inner = judge
        self.log = KeyedLog(judgment_log_path(judge, root)) if judge.cacheable else None
        self.asked = 0  # judgments the judge itself produced in this process
        self.reused = 0  # judgments read back from the cache
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def path(self) -> Path | None:
        return self.log.path if self.log is not None else None

    def judge(self, request: JudgeRequest) -> Judgment:
        key = request.key()
        if self.log is not None:
            stored = self.log.get(key)
            if stored is not None:
                with self._lock:
                    self.reused += 1
                return Judgment.from_json(stored)
        with self._lock:
            self.asked += 1
        judgment = self.inner.judge(request)
        if self.log is not None and judgment.outcome in FINAL_OUTCOMES:
            self.log.append(
                key,
                {
                    **judgment.to_json(),
                    "item_id": request.item_id,
                    "prompt_sha256": text_sha256(request.prompt),
                    "response_sha256": text_sha256(request.response),
                },
            )
        return judgment

    def judge_all(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        """Judgments of ``requests`` in order, up to the judge's ``concurrency`` at once.

        Each is cached the moment it is done; on an interruption the requests not yet
        started are cancelled, so what finished is kept and nothing more is paid for."""
        workers = max(1, int(getattr(self.inner, "concurrency", 1)))
        if workers == 1 or len(requests) < 2:
            return [self.judge(request) for request in requests]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge")
        try:
            results = list(pool.map(self.judge, requests))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results
