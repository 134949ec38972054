"""An OpenAI-compatible chat endpoint as the judge (``--judge openai:<model>?...``).

``POST <base_url>/chat/completions`` with the rubric as the system message, temperature 0,
through the standard library (no client package). The key is read from the environment
variable whose *name* is the ``key_env`` option (default ``OPENAI_API_KEY``); only the
name appears in records, logs, cache keys and messages, and the key's value is scrubbed
from any text kept from a reply. Without the variable set, no key is sent (a local server).

Requests are spaced to at most ``rpm`` a minute. A 429, a 5xx, a timeout or a dropped
connection is retried with exponential backoff (``backoff`` seconds, doubling; a server's
``Retry-After`` is honoured up to 60 s) up to ``retries`` times; past that the item is a
counted ``rate_limited`` / ``timeout`` / ``failed`` outcome and the run goes on. A refused
key (401/403) or an unknown model (404) stops the run with one line: every later request
would fail the same way.

Options: ``base_url`` (default https://api.openai.com/v1), ``key_env``, ``timeout`` (s,
default 120), ``retries`` (default 6), ``backoff`` (default 2), ``rpm`` (default 60, 0: no
spacing), ``max_tokens`` (default 2048), ``max_attachment_chars`` (attached text shown to
the judge is cut to this, default 400,000 characters, about the paper's 102,400 tokens),
``concurrency`` (requests in flight at once, default 4; spacing still applies).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from harness.errors import HarnessError
from harness.judges.base import Judge
from harness.judges.protocol import FAILED, RATE_LIMITED, TIMEOUT, JudgeUnavailable

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
MAX_RETRY_AFTER_S = 60.0


class EndpointJudge(Judge):
    kind = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        key_env: str = DEFAULT_KEY_ENV,
        timeout: float = 120.0,
        retries: int = 6,
        backoff: float = 2.0,
        rpm: float = 60.0,
        max_tokens: int = 2048,
        max_attachment_chars: int = 400_000,
        concurrency: int = 4,
    ) -> None:
        if not model:
            raise HarnessError("an openai judge needs a model name: --judge openai:<model>")
        if not base_url.startswith(("http://", "https://")):
            raise HarnessError(f"judge base_url must start with http:// or https://: {base_url!r}")
        if "@" in urlsplit(base_url).netloc:
            raise HarnessError(
                "judge base_url must not hold credentials (user:password@): they would be "
                "recorded with the run; put the key in the variable named by key_env"
            )
        if not key_env.replace("_", "").isalnum():
            raise HarnessError(f"key_env must name an environment variable, got {key_env!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.key_env = key_env
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.interval = 60.0 / float(rpm) if rpm else 0.0
        self.max_tokens = int(max_tokens)
        self.attachment_chars = int(max_attachment_chars)
        if int(concurrency) < 1:
            raise HarnessError(f"judge concurrency must be at least 1, got {concurrency}")
        self.concurrency = int(concurrency)
        self._last_request = 0.0
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests sent, retries included

    @property
    def identity(self) -> str:
        return (
            f"openai:{self.model}@{self.base_url}?max_tokens="
            f"{self.max_tokens}&max_attachment_chars={self.attachment_chars}"
        )

    def max_attachment_chars(self) -> int | None:
        return self.attachment_chars

    def _key(self) -> str | None:
        return os.environ.get(self.key_env) or None

    def _scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def _space(self) -> None:
        with self._lock:
            wait = self._last_request + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        self._space()
        self.requests += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
            return json.loads(reply.read().decode("utf-8"))

    def complete(self, system: str, user: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        outcome, detail = FAILED, ""
        for attempt in range(self.retries + 1):
            delay = self.backoff * (2**attempt)
            try:
                data = self._post(body)
            except urllib.error.HTTPError as error:
                status = error.code
                if status in (401, 403):
                    raise HarnessError(
                        f"the judge endpoint {self.base_url} refused the key in ${self.key_env} "
                        f"(HTTP {status}); set {self.key_env} to a valid key"
                    ) from None
                if status == 404:
                    raise HarnessError(
                        f"the judge endpoint {self.base_url} has no /chat/completions or no model "
                        f"{self.model!r} (HTTP 404); check base_url and the model name"
                    ) from None
                if status != 429 and status < 500:
                    raise JudgeUnavailable(
                        FAILED, f"HTTP {status} from the judge endpoint"
                    ) from None
                outcome = RATE_LIMITED if status == 429 else FAILED
                detail = f"HTTP {status} after {attempt + 1} requests"
                retry_after = _retry_after(
                    error.headers.get("Retry-After") if error.headers else None
                )
                if retry_after is not None:
                    delay = max(delay, retry_after)
            except TimeoutError:
                outcome, detail = TIMEOUT, f"no answer within {self.timeout:g}s"
            except urllib.error.URLError as error:
                if isinstance(error.reason, TimeoutError | socket.timeout):
                    outcome, detail = TIMEOUT, f"no answer within {self.timeout:g}s"
                else:
                    outcome = FAILED
                    detail = self._scrub(f"cannot reach the judge endpoint: {error.reason}")
            except (ValueError, ConnectionError) as error:
                outcome, detail = FAILED, self._scrub(f"bad reply: {type(error).__name__}")
            else:
                try:
                    return self._scrub(str(data["choices"][0]["message"]["content"] or ""))
                except (KeyError, IndexError, TypeError):
                    raise JudgeUnavailable(FAILED, "the reply has no choices[0].message") from None
            if attempt < self.retries:
                time.sleep(delay)
        raise JudgeUnavailable(outcome, detail, attempts=self.retries + 1)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": self.model,
            "base_url": self.base_url,
            "key_env": self.key_env,
            "rpm": 60.0 / self.interval if self.interval else 0,
            "retries": self.retries,
            "concurrency": self.concurrency,
        }


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None
