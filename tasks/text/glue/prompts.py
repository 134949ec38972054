"""GLUE as text to text: FusionBench's prompt templates and target words for Flan-T5.

The input templates are FusionBench's ``fusion_bench/tasks/flan_t5_text_generation/
glue_prompt_templates.py`` word for word, typos included ("Answere"): the
``tanganke/flan-t5-*_glue-*`` experts were fine-tuned on exactly these strings, so any
change of wording moves their scores. Targets are the label words in label-id order
(e.g. qnli and rte: 0 → "yes", GLUE's "entailment"); stsb's target is the similarity
score printed with one decimal ("{:.1f}", so 3.8 → "3.8").
"""

from __future__ import annotations

from collections.abc import Sequence

TEMPLATES: dict[str, str] = {
    "cola": (
        'Indicate if the following sentence is grammatically correct or not: "{sentence}". '
        "Answere 'acceptable' or 'unacceptable'."
    ),
    "mnli": (
        "Does the premise: '{premise}' logically imply, contradict, or is neutral to the "
        "hypothesis: '{hypothesis}'? Answere with 'entailment', 'contradiction', or 'neutral'."
    ),
    "mrpc": (
        "Are the following sentences '{sentence1}' and '{sentence2}' conveying the same "
        "meaning? Answere with 'yes' or 'no'."
    ),
    "qnli": (
        "Given the context: '{sentence}', does the question '{question}' have an answer based "
        "on the information provided? Answer with 'yes' or 'no'."
    ),
    "qqp": (
        "Do the questions '{question1}' and '{question2}' have the same intent? "
        "Answere with 'yes' or 'no'."
    ),
    "rte": (
        "Does the text: '{sentence1}' entail that '{sentence2}' is true? Provide 'yes' or 'no'."
    ),
    "sst2": (
        "Given the sentence '{sentence}', determine the sentiment. Is it positive or negative?"
    ),
    "stsb": (
        "Consider the sentences '{sentence1}' and '{sentence2}'. On a scale from 1 (completely "
        "different) to 5 (completely similar), rate the similarity."
    ),
}

#: Target words by label id; stsb has none (its target is the printed score).
LABEL_WORDS: dict[str, tuple[str, ...]] = {
    "cola": ("unacceptable", "acceptable"),
    "mnli": ("entailment", "neutral", "contradiction"),
    "mrpc": ("no", "yes"),
    "qnli": ("yes", "no"),
    "qqp": ("no", "yes"),
    "rte": ("yes", "no"),
    "sst2": ("negative", "positive"),
}

SCORE_FORMAT = "{:.1f}"  # stsb's target text
#: Every target stsb can have: its scores lie in [0, 5], printed with one decimal.
PRINTED_SCORES = tuple(SCORE_FORMAT.format(tenth / 10) for tenth in range(51))


def prompt(task: str, fields: Sequence[str], values: str | tuple[str, ...]) -> str:
    """The input text of one example: the task's template filled with its field values."""
    values = (values,) if isinstance(values, str) else tuple(values)
    return TEMPLATES[task].format(**dict(zip(fields, values, strict=True)))


def score_text(score: float) -> str:
    """stsb's target text: the score with one decimal."""
    return SCORE_FORMAT.format(float(score))


def printed_index(score: float) -> int:
    """The position of the score's target text in :data:`PRINTED_SCORES` (clipped)."""
    return min(max(round(float(score_text(score)) * 10), 0), len(PRINTED_SCORES) - 1)


def target(task: str, label: float | int) -> str:
    """The text the model should generate for ``label``."""
    if task == "stsb":
        return score_text(label)
    return LABEL_WORDS[task][int(label)]
