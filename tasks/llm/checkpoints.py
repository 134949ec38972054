"""Checkpoint sets of the LLM suites: one base and its experts, by hub id.

Public sets (``--suite-set checkpoints=<name>``, recorded as the run's checkpoint set):

- MergeBench (Wang et al., arXiv 2505.10833): experts ``MergeBench/<model>_<skill>`` for
  the skills instruction, math, coding, safety, multilingual, fine-tuned from Llama-3.2-3B,
  Llama-3.1-8B, Gemma-2-2B and Gemma-2-9B. The repository pattern is the paper's; the
  ``<model>`` spellings below (``Llama-3.2-3B``, ``gemma-2-2b``, ...) are the base models'
  own hub names and are not confirmed from the MergeBench organisation's listing.
- DARE's pair (Yu et al., "Language Models are Super Mario", MergeLM): WizardLM-13B-V1.2
  and WizardMath-13B-V1.0, both fine-tuned from Llama-2-13B. The WizardLM organisation
  moved its models to ``WizardLMTeam/`` (the old ids redirect); the ids are not given in
  the harness's reference notes.
- Qwen2.5 1.5B: the base with its Math, Coder and Instruct models (the Math and Coder
  models are continued-pretraining descendants of the same base, as Qwen describes them).

A set can also be given on the command line (``checkpoints=custom`` with ``base=<id>``
and ``experts=<name>=<id>,...``), which is how the layer-swapping paper's setting is run:
its Llama 3.1 8B math and language experts were not released.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.errors import HarnessError

MERGEBENCH_SKILLS = ("instruction", "math", "coding", "safety", "multilingual")
MERGEBENCH = "https://arxiv.org/abs/2505.10833"


@dataclass(frozen=True)
class CheckpointSet:
    """A base model and its experts (expert name → hub id)."""

    name: str
    base: str
    experts: Mapping[str, str]
    source: str = ""  # paper or model card
    #: languages each expert stands for (cross-lingual suites; "en" for a math expert)
    languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _mergebench(name: str, base: str, model: str) -> CheckpointSet:
    experts = {skill: f"MergeBench/{model}_{skill}" for skill in MERGEBENCH_SKILLS}
    # MergeBench's multilingual expert is trained on French, Spanish, German and Russian.
    languages = {"math": ("en",), "multilingual": ("fr", "es", "de", "ru")}
    return CheckpointSet(name, base, experts, MERGEBENCH, languages)


CHECKPOINT_SETS: dict[str, CheckpointSet] = {
    entry.name: entry
    for entry in [
        _mergebench("mergebench-llama3.2-3b", "meta-llama/Llama-3.2-3B", "Llama-3.2-3B"),
        _mergebench("mergebench-llama3.1-8b", "meta-llama/Llama-3.1-8B", "Llama-3.1-8B"),
        _mergebench("mergebench-gemma2-2b", "google/gemma-2-2b", "gemma-2-2b"),
        _mergebench("mergebench-gemma2-9b", "google/gemma-2-9b", "gemma-2-9b"),
        CheckpointSet(
            "wizard-llama2-13b",
            "meta-llama/Llama-2-13b-hf",
            {
                "instruction": "WizardLMTeam/WizardLM-13B-V1.2",
                "math": "WizardLMTeam/WizardMath-13B-V1.0",
            },
            "https://arxiv.org/abs/2311.03099",
            {"math": ("en",)},
        ),
        CheckpointSet(
            "qwen2.5-1.5b",
            "Qwen/Qwen2.5-1.5B",
            {
                "math": "Qwen/Qwen2.5-Math-1.5B",
                "coding": "Qwen/Qwen2.5-Coder-1.5B",
                "instruction": "Qwen/Qwen2.5-1.5B-Instruct",
            },
            "https://arxiv.org/abs/2412.15115",
            {"math": ("en",)},
        ),
    ]
}


def parse_experts(value: str) -> dict[str, str]:
    """``math=org/a,sw=org/b`` → {"math": "org/a", "sw": "org/b"}, or a one-line error."""
    experts: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, repo = item.partition("=")
        name, repo = name.strip(), repo.strip()
        if not sep or not name or repo.count("/") != 1 or name in experts:
            raise HarnessError(
                f"experts= expects distinct name=org/model pairs separated by commas "
                f"(e.g. experts=math=org/math-model,sw=org/swahili-model); got {item!r}"
            )
        experts[name] = repo
    return experts


def custom_set(base: str, experts: str) -> CheckpointSet:
    """The set given on the command line: ``base=<id>`` and ``experts=name=id,...``; an
    expert named by a language code stands for that language (``math`` for English)."""
    if not base or base.count("/") != 1 or not experts:
        raise HarnessError(
            "checkpoints=custom needs --suite-set base=org/model and --suite-set "
            "experts=math=org/math-expert,sw=org/swahili-expert (names: math or a language)"
        )
    parsed = parse_experts(experts)
    languages = {name: ("en",) if name == "math" else (name,) for name in parsed}
    return CheckpointSet("custom", base, parsed, "command line", languages)


def checkpoint_set(options: Mapping[str, object]) -> CheckpointSet:
    """The set a suite's options name."""
    name = str(options["checkpoints"])
    if name == "custom":
        return custom_set(str(options.get("base", "")), str(options.get("experts", "")))
    return CHECKPOINT_SETS[name]
