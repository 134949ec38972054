"""The causal LMs of a crosseval run: a base and its experts by hub id, one tokenizer.

The experts must be fine-tunes of the base (same architecture and vocabulary; the pool
then checks every tensor); responses are generated with the base's tokenizer. Loading,
the architecture check and building a model from a merged state are the LLM suites'
(``tasks/llm/models.py``); this module adds the ``name=value`` options crosseval takes.
"""

from __future__ import annotations

from harness.errors import CheckpointError, HarnessError
from harness.weights.hub import ResolvedArtifact
from tasks.llm.models import (
    MODEL_FILES,
    build_causal_lm,
    check_architecture,
    evaluation_dtype,
    load_tokenizer,
    read_config,
)

__all__ = [
    "MODEL_FILES",
    "build_causal_lm",
    "check_expert",
    "evaluation_dtype",
    "load_tokenizer",
    "parse_pairs",
    "read_config",
]


def parse_pairs(value: str, option: str, example: str) -> dict[str, str]:
    """``a=x,b=y`` → {"a": "x", "b": "y"}, or a one-line error."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in str(value).split(",")):
        if not item:
            continue
        name, sep, target = (text.strip() for text in item.partition("="))
        if not sep or not name or not target or name in pairs:
            raise HarnessError(
                f"{option}= expects distinct name=value pairs separated by commas "
                f"(e.g. {option}={example}); got {item!r}"
            )
        pairs[name] = target
    return pairs


def check_expert(base: ResolvedArtifact, name: str, expert: ResolvedArtifact) -> None:
    """The expert is the base's architecture with the base's vocabulary (crosseval does
    not trim appended tokens as the LLM suites do), or one line."""
    appended = check_architecture(base, name, expert)
    if appended:
        raise CheckpointError(
            f"expert {name!r} ({expert.id}) has {appended} more vocabulary rows than the base "
            f"{base.id}: give experts fine-tuned from this base with its vocabulary"
        )
