"""Judges that score a generated response 1–5 with CrossEval's protocol.

A judge is named by one string (``--judge``), ``<kind>:<target>?<option>=<value>&...``:

- ``local:<hub id or directory>`` — a transformers causal LM run here
  (:mod:`harness.judges.local`);
- ``openai:<model>?base_url=...&key_env=...`` — an OpenAI-compatible chat endpoint
  (:mod:`harness.judges.endpoint`);
- ``replay:<file.jsonl>`` or ``replay:crosseval-human`` — stored judgments
  (:mod:`harness.judges.replay`).

The protocol (prompt, retries, parsing, rescaling) is :mod:`harness.judges.protocol`; the
judgment cache is :mod:`harness.judges.cached`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from harness.errors import HarnessError
from harness.judges.base import Judge

KINDS = ("local", "openai", "replay")
EXAMPLES = (
    "local:Qwen/Qwen2.5-7B-Instruct, openai:gpt-4o?key_env=OPENAI_API_KEY, "
    "replay:judgments.jsonl, replay:crosseval-human"
)


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``kind:target?a=1&b=2`` → (kind, target, {a: "1", b: "2"})."""
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind not in KINDS or not rest:
        raise HarnessError(
            f"--judge {spec!r} is not <kind>:<target> with kind one of {', '.join(KINDS)} "
            f"(e.g. {EXAMPLES})"
        )
    target, _, query = rest.partition("?")
    return kind, target, dict(parse_qsl(query, keep_blank_values=True))


def _options(kind: str, given: dict[str, str], types: dict[str, Callable[[str], Any]]) -> dict:
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise HarnessError(
            f"{kind} judges have no option {unknown[0]!r}; their options: {', '.join(types)}"
        )
    try:
        return {name: types[name](value) for name, value in given.items()}
    except ValueError:
        raise HarnessError(
            f"a {kind} judge option has a value of the wrong type: {given}"
        ) from None


def make_judge(spec: str, *, mirror: Path | None = None) -> Judge:
    """The judge a ``--judge`` string names (models and data resolved via ``mirror``)."""
    kind, target, given = parse_spec(spec)
    if kind == "local":
        from harness.judges.local import LocalJudge

        options = _options(kind, given, {"max_new_tokens": int, "device": str})
        return LocalJudge(target, mirror=mirror, **options)
    if kind == "openai":
        from harness.judges.endpoint import EndpointJudge

        types = {
            "base_url": str,
            "key_env": str,
            "timeout": float,
            "retries": int,
            "backoff": float,
            "rpm": float,
            "max_tokens": int,
            "max_attachment_chars": int,
            "concurrency": int,
        }
        return EndpointJudge(target, **_options(kind, given, types))
    from harness.judges.replay import ReplayJudge

    _options(kind, given, {})
    if target == "crosseval-human":
        # CrossEval's own ratings: its data module knows the schema (imported lazily, the
        # one place where harness/ reads a suite's data)
        from tasks.text.crosseval.data import human_judgments

        return ReplayJudge.from_pairs(human_judgments(mirror), "crosseval-human")
    return ReplayJudge.from_jsonl(Path(target))
