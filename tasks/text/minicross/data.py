"""minicross's generated items: each needs two skills that minimath's experts hold apart.

minimath's experts each hold one capability: ``math`` (arithmetic word problems, L1),
``lang2`` (reading the second language) and ``kind`` (the kind of a word, L1). A cross
capability asks for two of them in one item, as CrossEval's "Spanish & Reasoning" does,
with an exact answer after ``####`` so a rule (lm-eval's strict-match exact match)
scores it without an LLM judge:

- ``math_l2`` (math × lang2): math's word problems written in L2 (minimath's own
  cross-lingual task, its items unchanged).
- ``kind_l2`` (kind × lang2): kind's question written in L2: the words to classify and
  the kind names of the answer are L2 words.
- ``math_kind`` (math × kind): a word problem followed by "what kind of word is W ?" for
  one of its words; the answer is the worked equations, the kind sentence and
  ``#### <number> <kind>``: both parts must be right.

Train splits exist only to carve the fixed validation split that hyperparameter selection
scores; nothing trains on them. The L1 source of a cross test item never occurs in its
parent's train split, so no item was seen, in either language, during fine-tuning.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tasks.text.minimath import data as minimath

PARENT_TASKS = minimath.EXPERT_TASKS  # math, lang2, kind


@dataclass(frozen=True)
class CrossTask:
    """A cross capability: its two parents, how an L1 item is drawn, and the language."""

    parents: tuple[str, str]
    make: Callable[[random.Random], minimath.Example]
    in_l2: bool
    answer_regex: str
    description: str
    #: the parent whose train questions a test item's L1 source must avoid
    source_task: str
    #: an L1 item's question → the question of its source parent item
    source_question: Callable[[str], str] = lambda question: question


KIND_QUESTION = " what kind of word is "


def math_kind_item(rng: random.Random) -> minimath.Example:
    """A word problem, then the kind of one of its words (its name or its thing)."""
    problem = minimath.math_problem(rng)
    words = problem.question.split()
    name, thing = words[0], next(w for w in words if w in minimath.THINGS)
    word, kind = rng.choice([(name, "name"), (thing, "thing")])
    worked, number = problem.answer.split(" #### ")
    return minimath.Example(
        f"{problem.question}{KIND_QUESTION}{word} ?",
        f"{worked} . {word} is a {kind} #### {number} {kind}",
    )


CROSS_TASKS: dict[str, CrossTask] = {
    "math_l2": CrossTask(
        ("math", "lang2"),
        minimath.math_problem,
        True,
        minimath.TASKS["math_l2"].answer_regex,
        minimath.TASKS["math_l2"].description,
        "math",
    ),
    "kind_l2": CrossTask(
        ("kind", "lang2"),
        minimath.kind_item,
        True,
        minimath.TASKS["kind"].answer_regex,
        "the kinds of three words, asked and answered in L2",
        "kind",
    ),
    "math_kind": CrossTask(
        ("math", "kind"),
        math_kind_item,
        False,
        r"#### (\-?[0-9]+ \S+)",
        "a word problem and the kind of one of its words (L1)",
        "math",
        lambda question: question.split(KIND_QUESTION)[0],
    ),
}
#: cross capability → its two parent capabilities (the weakest-link statistics' map)
PARENTS: dict[str, tuple[str, str]] = {name: task.parents for name, task in CROSS_TASKS.items()}


def examples(
    task: str, split: str, count: int, seed: int, words: dict[str, str], *, parent_train: int
) -> list[minimath.Example]:
    """``count`` distinct items of a cross task's split, seeded. math_l2 is minimath's own
    task (the same items). Other tasks draw from their own stream and skip every question
    whose L1 source is in the source parent's first ``parent_train`` train items, and
    train skips test's questions."""
    if task == "math_l2":
        return minimath.examples(task, split, count, seed, words)
    spec = CROSS_TASKS[task]
    parent = (
        minimath.examples(spec.source_task, "train", parent_train, seed, {}) if parent_train else []
    )
    excluded = {e.question for e in parent}
    if split == "train":
        excluded |= {e.question for e in _l1(task, "test", minimath.TEST_POOL, seed, excluded)}
    made = _l1(task, split, count, seed, excluded)
    if spec.in_l2:
        made = [
            minimath.Example(minimath.translate(e.question, words),
                             minimath.translate(e.answer, words))
            for e in made
        ]  # fmt: skip
    return made


def _l1(task: str, split: str, count: int, seed: int, excluded: set[str]) -> list[minimath.Example]:
    spec = CROSS_TASKS[task]
    rng = random.Random(f"minicross-{task}-{split}-{seed}")
    made: list[minimath.Example] = []
    seen: set[str] = set()
    for _ in range(1_000_000):
        example = spec.make(rng)
        source = spec.source_question(example.question)
        if example.question in excluded or source in excluded or example.question in seen:
            continue
        seen.add(example.question)
        made.append(example)
        if len(made) == count:
            return made
    raise RuntimeError(f"could not draw {count} distinct {task} items")
