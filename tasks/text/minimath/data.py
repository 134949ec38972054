"""minimath's generated data: two "languages" of one small world, and four tasks in them.

Language 1 (L1) is a small English-like vocabulary of names, things, places and verbs.
Language 2 (L2) is the same language with every word replaced by an invented one through
a seeded bijection (:func:`lexicon`): the same sentences, the same arithmetic, other
surface tokens. What real languages share stays shared: digits (every number is one
token), the arithmetic symbols, punctuation and the prompt's markup (``Question:``,
``Answer:``, ``####``), as GSM8K's format is shared by MGSM's languages.

Pretraining text (:func:`pretraining_corpus`, ``PRETRAINING_MIX``) is narrative in both
languages, L2 being the lower-resource one (a tenth of the documents, never a question,
its operation verbs in 2% of the text), a quarter of code-switched text (what makes the
base bilingual), arithmetic facts and L1 word problems with worked answers.

Tasks (each example a ``question`` and an ``answer`` in GSM8K's form, the answer ending
``#### X``):

- ``math``: word problems in L1 (add, take away, groups of, two steps) with the worked
  equations as the answer, ``a + b = c #### c``.
- ``lang2``: reading comprehension in L2: a short L2 story about quantities changing hands,
  and a question about who did what / how many of something someone first had; the answer
  is a word or number of the story.
- ``kind``: a symbolic skill in L1: the kind (name, thing, place, quality) of each of three words.
- ``math_l2``: ``math``'s problems written in L2. No expert is trained on it: it is the
  cross-lingual target (MGSM's role), solvable by composing the math expert's skill with
  the language expert's L2.

The lang2 expert's training data also holds generic L2 text (:func:`lang2_text`: counts
changing hands and questions about them, the language, not the math task), as the
paper's language experts are trained on generic target-language instruction data.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

NAMES = ["tom", "ann", "sam", "lea", "max", "eva", "ben", "ida", "joe", "mia", "leo", "zoe"]
THINGS = ["apples", "pears", "books", "coins", "cards", "shells", "stamps", "pens", "eggs",
          "cups", "stones", "beads"]  # fmt: skip
PLACES = ["park", "shop", "school", "garden", "market", "river", "library", "farm"]
ADJECTIVES = ["red", "big", "small", "old", "new", "green", "blue", "heavy"]
# The verbs that carry arithmetic meaning in word problems
ADD_VERBS = ["buys", "finds", "gets", "wins"]
SUB_VERBS = ["gives away", "loses", "sells", "eats"]
FUNCTION_WORDS = [
    "has", "have", "had", "likes", "walks", "goes", "sees", "to", "the", "with", "and",
    "then", "more", "how", "many", "does", "now", "after", "first", "each", "box", "holds",
    "boxes", "bag", "bags", "of", "in", "at", "is", "are", "a", "who", "what", "did", "sort",
    "numbers", "from", "small", "large", "it", "they", "day", "every", "morning", "later",
    "some", "friend", "his", "her", "plays", "reads", "keeps", "brings", "counts", "do",
    "kind", "word", "name", "thing", "place", "quality",
]  # fmt: skip
MARKUP = ["Question:", "Answer:", "####", "+", "-", "*", "=", ".", "?", ",", ":"]
MAX_NUMBER = 100  # every integer 0..MAX_NUMBER is one shared token


def l1_words() -> list[str]:
    """Every L1 word (numbers and markup excluded), in a fixed order."""
    words = [*NAMES, *THINGS, *PLACES, *ADJECTIVES, *FUNCTION_WORDS]
    for verb in ADD_VERBS + SUB_VERBS:
        words += verb.split()
    seen: dict[str, None] = {}
    for word in words:
        seen.setdefault(word, None)
    return list(seen)


def lexicon(seed: int) -> dict[str, str]:
    """The seeded bijection L1 word → invented L2 word (consonant-vowel syllables)."""
    rng = random.Random(f"minimath-lexicon-{seed}")
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    taken: set[str] = set()
    mapping = {}
    for word in l1_words():
        while True:
            syllables = rng.randint(2, 3)
            made = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
            if made not in taken and made not in mapping:
                break
        taken.add(made)
        mapping[word] = made
    return mapping


def translate(text: str, words: dict[str, str]) -> str:
    """L1 text → L2: each word mapped, numbers and markup kept."""
    return " ".join(words.get(token, token) for token in text.split())


@dataclass(frozen=True)
class Example:
    question: str
    answer: str

    def to_json(self) -> dict[str, str]:
        return {"question": self.question, "answer": self.answer}


# ---------------------------------------------------------------------------- math
def math_problem(rng: random.Random) -> Example:
    """One L1 word problem with its worked answer (GSM8K's ``#### N`` ending)."""
    name = rng.choice(NAMES)
    thing = rng.choice(THINGS)
    kind = rng.choice(["add", "sub", "mul", "add_sub"])
    if kind == "add":
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        verb = rng.choice(ADD_VERBS)
        question = (
            f"{name} has {a} {thing} . {name} {verb} {b} more {thing} . "
            f"how many {thing} does {name} have now ?"
        )
        return Example(question, f"{a} + {b} = {a + b} #### {a + b}")
    if kind == "sub":
        a = rng.randint(2, 30)
        b = rng.randint(1, a - 1)
        verb = rng.choice(SUB_VERBS)
        question = (
            f"{name} has {a} {thing} . {name} {verb} {b} {thing} . "
            f"how many {thing} does {name} have now ?"
        )
        return Example(question, f"{a} - {b} = {a - b} #### {a - b}")
    if kind == "mul":
        a, b = rng.randint(2, 6), rng.randint(2, 6)
        question = (
            f"{name} has {a} boxes . each box holds {b} {thing} . "
            f"how many {thing} does {name} have ?"
        )
        return Example(question, f"{a} * {b} = {a * b} #### {a * b}")
    a, b = rng.randint(1, 15), rng.randint(1, 15)
    c = rng.randint(1, a + b - 1)
    add, sub = rng.choice(ADD_VERBS), rng.choice(SUB_VERBS)
    question = (
        f"{name} has {a} {thing} . {name} {add} {b} more {thing} and then {sub} {c} {thing} . "
        f"how many {thing} does {name} have now ?"
    )
    return Example(question, f"{a} + {b} = {a + b} . {a + b} - {c} = {a + b - c} #### {a + b - c}")


# ---------------------------------------------------------------------------- lang2
def reading_item(rng: random.Random) -> Example:
    """One L1 reading-comprehension item (translated to L2 by the caller): a short story
    about quantities changing hands, a question answered by one word or number of it."""
    first, second = rng.sample(NAMES, 2)
    thing, other = rng.sample(THINGS, 2)
    place = rng.choice(PLACES)
    a, b = rng.randint(1, 30), rng.randint(1, 30)
    verb = rng.choice(ADD_VERBS + SUB_VERBS)
    story = (
        f"{first} has {a} {thing} . {second} has {b} {other} . "
        f"at the {place} {first} {verb} some {thing} ."
    )
    kind = rng.choice(["who_verb", "how_many", "what_thing"])
    if kind == "who_verb":
        return Example(f"{story} who {verb} {thing} ?", f"{first} {verb} {thing} #### {first}")
    if kind == "how_many":
        return Example(
            f"{story} how many {other} does {second} have ?", f"{second} has {b} {other} #### {b}"
        )
    return Example(f"{story} what does {second} have ?", f"{second} has {other} #### {other}")


# ---------------------------------------------------------------------------- kind
KINDS = {"name": NAMES, "thing": THINGS, "place": PLACES, "quality": ADJECTIVES}


def kind_item(rng: random.Random) -> Example:
    """A symbolic skill in L1: which kind of word each of three words is."""
    kinds = [rng.choice(list(KINDS)) for _ in range(3)]
    given = [rng.choice(KINDS[kind]) for kind in kinds]
    return Example(
        f"what kind of word is each of {' '.join(given)} ?",
        f"{' , '.join(f'{w} is a {k}' for w, k in zip(given, kinds))} #### {' '.join(kinds)}",
    )


# ---------------------------------------------------------------------------- pretraining
def narrative(rng: random.Random, quantities: bool, question: bool = False) -> str:
    """A few L1 sentences of general narrative; with ``quantities``, also things changing
    hands with their counts (what word problems are made of, without the Q/A form); with
    ``question``, ending in a question about a count that the text then answers."""
    sentences = []
    for _ in range(rng.randint(2, 4)):
        name, friend = rng.sample(NAMES, 2)
        thing, place, adjective = rng.choice(THINGS), rng.choice(PLACES), rng.choice(ADJECTIVES)
        choices = [
            f"{name} likes {adjective} {thing} .",
            f"{name} walks to the {place} with {friend} .",
            f"every morning {name} goes to the {place} .",
            f"{name} sees {friend} at the {place} .",
            f"the {thing} are in the {place} .",
            f"{name} reads at the {place} and then plays with {friend} .",
            f"{name} keeps the {adjective} {thing} in a bag .",
            f"{name} brings {thing} to {friend} .",
        ]
        if quantities:
            a, b = rng.randint(1, 20), rng.randint(1, 20)
            add, sub = rng.choice(ADD_VERBS), rng.choice(SUB_VERBS)
            big = b + rng.randint(1, 15)
            m, n = rng.randint(2, 6), rng.randint(2, 6)
            choices += [
                f"{name} has {a} {thing} . {name} {add} {b} more {thing} . "
                f"now {name} has {a + b} {thing} .",
                f"{name} has {big} {thing} . {name} {sub} {b} {thing} . "
                f"now {name} has {big - b} {thing} .",
                f"{name} counts {a} {thing} at the {place} .",
                f"{name} has {m} boxes . each box holds {n} {thing} . {name} has {m * n} {thing} .",
            ]
        sentences.append(rng.choice(choices))
    if question:
        sentences.append(question_sentence(rng))
    return " ".join(sentences)


def question_sentence(rng: random.Random) -> str:
    """A count, a change, the question how many, and its answer, as generic text asks and
    answers questions (the question words a word problem is asked in)."""
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    add, sub = rng.choice(ADD_VERBS), rng.choice(SUB_VERBS)
    big = b + rng.randint(1, 15)
    m, n = rng.randint(2, 6), rng.randint(2, 6)
    ask = f"how many {thing} does {name} have"
    return rng.choice(
        [
            f"{name} has {a} {thing} . {ask} ? {name} has {a} {thing} .",
            f"{name} has {a} {thing} . {name} {add} {b} more {thing} . {ask} now ? "
            f"{name} has {a + b} {thing} now .",
            f"{name} has {big} {thing} . {name} {sub} {b} {thing} . {ask} now ? "
            f"{name} has {big - b} {thing} now .",
            f"{name} has {m} boxes . each box holds {n} {thing} . {ask} ? "
            f"{name} has {m * n} {thing} .",
        ]
    )


def code_switched(text: str, words: dict[str, str], rng: random.Random) -> str:
    """L1 text with each word but the operation verbs switched to L2 with probability
    ``CODE_SWITCH``: mixed-language text, from which the base learns that the two
    languages' names, things and function words mean the same (the operation verbs, kept
    L1 here, it meets in L2 only in the rare L2 quantity text)."""
    return " ".join(
        words[token]
        if token in words and token not in OPERATION_WORDS and rng.random() < CODE_SWITCH
        else token
        for token in text.split()
    )


def arithmetic_fact(rng: random.Random) -> str:
    """Language-neutral arithmetic statements (shared symbols), as web text has them."""
    facts = []
    for _ in range(rng.randint(3, 6)):
        kind = rng.choice("+-*")
        if kind == "+":
            a, b = rng.randint(0, 30), rng.randint(0, 30)
            facts.append(f"{a} + {b} = {a + b} .")
        elif kind == "-":
            a = rng.randint(1, 45)
            b = rng.randint(0, a)
            facts.append(f"{a} - {b} = {a - b} .")
        else:
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            facts.append(f"{a} * {b} = {a * b} .")
    return " ".join(facts)


#: The pretraining mixture: (kind of document, share of the documents)
PRETRAINING_MIX = (
    ("l1_quantities", 0.15),  # L1 narrative with counts changing hands
    ("l1_questions", 0.18),  # the same, ending in a question about a count and its answer
    ("l2_narrative", 0.10),  # L2 narrative without quantities (the low-resource language)
    ("l2_quantities", 0.02),  # L2 narrative with quantities: the L2 operation verbs, rarely
    ("code_switched", 0.25),  # L1 quantity narrative, words switched to L2 (operations kept)
    ("arithmetic", 0.15),  # language-neutral arithmetic statements
    ("word_problems", 0.15),  # L1 word problems with worked answers, test problems excluded
)
CODE_SWITCH = 0.5  # the probability that a code-switched document's word is L2
OPERATION_WORDS = frozenset(word for verb in ADD_VERBS + SUB_VERBS for word in verb.split())


def pretraining_corpus(count: int, seed: int, words: dict[str, str]) -> list[str]:
    """``count`` documents drawn from ``PRETRAINING_MIX``. L2 is the low-resource language:
    a tenth of the documents in it, never a question, its operation verbs in 2% of the
    text, and a quarter of the documents mixing it with L1 word by word. L1 word problems
    in GSM8K's worked form are there as web text has them (never a test problem of math
    or math_l2), so the base already answers some, as real base models do GSM8K."""
    rng = random.Random(f"minimath-pretrain-{seed}")
    kinds, shares = zip(*PRETRAINING_MIX)
    tested = {
        e.question
        for task in ("math", "math_l2")
        for e in _l1_examples(task, "test", TEST_POOL, seed)
    }
    documents = []
    for kind in rng.choices(kinds, shares, k=count):
        if kind == "l1_quantities":
            documents.append(narrative(rng, quantities=True))
        elif kind == "l1_questions":
            documents.append(narrative(rng, quantities=True, question=True))
        elif kind == "l2_narrative":
            documents.append(translate(narrative(rng, quantities=False), words))
        elif kind == "l2_quantities":
            documents.append(translate(narrative(rng, quantities=True), words))
        elif kind == "code_switched":
            documents.append(code_switched(narrative(rng, quantities=True), words, rng))
        elif kind == "arithmetic":
            documents.append(arithmetic_fact(rng))
        else:
            problem = next(e for e in _draw(math_problem, rng) if e.question not in tested)
            documents.append(f"Question: {problem.question} Answer: {problem.answer}")
    return documents


def lang2_text(count: int, seed: int, words: dict[str, str]) -> list[str]:
    """Generic L2 text with quantities and questions (what L2 pretraining lacked): what the
    language expert learns its words' embeddings from, and its continued-pretraining
    share; never a word problem."""
    rng = random.Random(f"minimath-lang2-text-{seed}")
    return [translate(narrative(rng, quantities=True, question=True), words) for _ in range(count)]


# ---------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TaskSpec:
    """A task: how an example is drawn, whether it is in L2, and its answer's regex."""

    make: Callable[[random.Random], Example]
    in_l2: bool
    answer_regex: str  # the strict-match filter's pattern (group 1 is the answer)
    description: str


TASKS: dict[str, TaskSpec] = {
    "math": TaskSpec(
        math_problem, False, r"#### (\-?[0-9\.\,]+)", "arithmetic word problems in L1"
    ),
    "lang2": TaskSpec(
        reading_item, True, r"#### (\S+)", "reading comprehension in L2 (words and numbers)"
    ),
    "kind": TaskSpec(
        kind_item, False, r"#### (\S+ \S+ \S+)", "the kinds of three words (name, thing, ...; L1)"
    ),
    "math_l2": TaskSpec(
        math_problem, True, r"#### (\-?[0-9\.\,]+)", "math's word problems written in L2"
    ),
}
EXPERT_TASKS = ("math", "lang2", "kind")
#: The cross-lingual target and its parents: the math skill's expert, the language's expert
CROSS_LINGUAL = {"math_l2": ("math", "lang2")}


def examples(task: str, split: str, count: int, seed: int, words: dict[str, str]) -> list[Example]:
    """``count`` distinct examples of ``task``'s ``split``, seeded; test questions never
    occur in train (math and math_l2 share the L1 problems' pool of questions, so math_l2
    test items are drawn from the same distribution but are distinct from math's train)."""
    spec = TASKS[task]
    # math_l2 draws math's problems from its own stream; train/test streams are disjoint
    # by excluding test questions from train
    rng = random.Random(f"minimath-{task}-{split}-{seed}")
    excluded = set()
    if split == "train":
        excluded = {e.question for e in _l1_examples(task, "test", TEST_POOL, seed)}
        if task == "math":  # nor math_l2's test problems, whose L1 source is a math problem
            excluded |= {e.question for e in _l1_examples("math_l2", "test", TEST_POOL, seed)}
    made: list[Example] = []
    seen: set[str] = set()
    for example in _draw(spec.make, rng):
        if example.question in excluded or example.question in seen:
            continue
        seen.add(example.question)
        made.append(example)
        if len(made) == count:
            break
    if spec.in_l2:
        made = [Example(translate(e.question, words), translate(e.answer, words)) for e in made]
    return made


TEST_POOL = 400  # test questions drawn per task (a test split takes its first N)


def _l1_examples(task: str, split: str, count: int, seed: int) -> list[Example]:
    return examples(task, split, count, seed, {}) if split == "test" else []


def _draw(make: Callable[[random.Random], Example], rng: random.Random) -> Iterator[Example]:
    for _ in range(1_000_000):
        yield make(rng)
    raise RuntimeError("could not draw enough distinct examples")


def all_words(words: dict[str, str]) -> list[str]:
    """The full vocabulary of both languages, numbers and markup (the tokenizer's)."""
    return [*MARKUP, *map(str, range(MAX_NUMBER + 1)), *words, *words.values()]
