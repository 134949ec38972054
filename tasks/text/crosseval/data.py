"""CrossEval's data (``MingZhong/crosseval``, one ``test.csv``, 1,400 rows, CC-BY-NC-4.0).

Columns, as the authors' evaluation code (facebookresearch/llm-cross-capabilities,
``evaluation/evaluate_response.py``) requires them: ``prompt_id``, ``capability``,
``difficulty``, ``l1_category``, ``l2_category``, ``prompt``, ``attached_file`` (a URL or
empty), and for i = 1..3 ``response_i`` with ``response_i_human_j_rating`` (1–5) and
``response_i_human_j_explanation`` for j = 1, 2. A file without one of them fails in one
line naming the missing columns.

Capabilities are the paper's 14 (seven individual, seven cross, written ``A & B``); the
suite's task names are their slugs (``spanish_reasoning``).

Attachments are URLs in the data. The harness never downloads them itself: a run looks
for ``<attachments dir>/<the URL's file name>`` (default ``attachments/`` beside
``test.csv``, in the mirror or the hub snapshot). Text attachments (long documents) found
there are given to the model and the judge; images, other binary files and attachments
not found are counted per reason and left out.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from harness.errors import HarnessError
from harness.judges.protocol import Reference

DATASET = "MingZhong/crosseval"
FILE = "test.csv"
REFERENCE = "https://arxiv.org/abs/2409.19951"
LICENSE = "CC-BY-NC-4.0"

INDIVIDUAL = {
    "english": "English",
    "reasoning": "Reasoning",
    "coding": "Coding",
    "image": "Image Recognition",
    "tool_use": "Tool Use",
    "long_context": "Long Context",
    "spanish": "Spanish",
}
#: cross capability slug → (its name in the data, its two parent slugs)
CROSS = {
    "coding_reasoning": ("Coding & Reasoning", ("coding", "reasoning")),
    "image_reasoning": ("Image Recognition & Reasoning", ("image", "reasoning")),
    "tool_coding": ("Tool Use & Coding", ("tool_use", "coding")),
    "tool_reasoning": ("Tool Use & Reasoning", ("tool_use", "reasoning")),
    "long_context_coding": ("Long Context & Coding", ("long_context", "coding")),
    "spanish_reasoning": ("Spanish & Reasoning", ("spanish", "reasoning")),
    "spanish_image": ("Spanish & Image Recognition", ("spanish", "image")),
}
CAPABILITIES = {**INDIVIDUAL, **{slug: name for slug, (name, _) in CROSS.items()}}
SLUGS = {name.lower(): slug for slug, name in CAPABILITIES.items()}
PARENTS = {slug: parents for slug, (_, parents) in CROSS.items()}

RESPONSES = (1, 2, 3)
RATERS = (1, 2)
COLUMNS = (
    "prompt_id",
    "capability",
    "difficulty",
    "l1_category",
    "l2_category",
    "prompt",
    "attached_file",
    *(
        column
        for i in RESPONSES
        for column in (
            f"response_{i}",
            *(
                f"response_{i}_human_{j}_{kind}"
                for j in RATERS
                for kind in ("rating", "explanation")
            ),
        )
    ),
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM")


class CrossEvalDataError(HarnessError):
    """A CrossEval file that does not follow the dataset's schema."""


@dataclass(frozen=True)
class Item:
    """One CrossEval prompt with its three human-rated reference responses."""

    prompt_id: str
    capability: str  # the slug
    difficulty: str
    l1_category: str
    l2_category: str
    prompt: str
    attached_file: str
    references: tuple[Reference, ...]

    @property
    def capability_name(self) -> str:
        return CAPABILITIES[self.capability]


def _is_empty(value: str | None) -> bool:
    return value is None or value.strip() in ("", "nan", "NaN", "None")


def _rating(value: str, where: str) -> float | None:
    if _is_empty(value):
        return None
    try:
        rating = float(value)
    except ValueError:
        raise CrossEvalDataError(f"{where} is {value[:40]!r}, not a rating from 1 to 5") from None
    if not 1.0 <= rating <= 5.0:
        raise CrossEvalDataError(f"{where} is {rating:g}, outside the rating scale 1-5")
    return rating


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [column for column in COLUMNS if column not in header]
            if missing:
                raise CrossEvalDataError(
                    f"{path} is not CrossEval's schema: it lacks the column(s) "
                    f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}; download "
                    f"{DATASET}/{FILE} again"
                )
            for row in reader:
                if None in row:  # more fields than the header: broken quoting
                    raise CrossEvalDataError(
                        f"{path} line {reader.line_num} has more fields than the header "
                        "(broken quoting?); download the file again"
                    )
                yield reader.line_num, row
    except (csv.Error, UnicodeDecodeError) as error:
        raise CrossEvalDataError(
            f"{path} is not a readable CSV ({type(error).__name__}: {str(error)[:80]}); "
            "download the file again"
        ) from None


def load_items(path: Path) -> list[Item]:
    """Every row of a CrossEval CSV, checked (schema, capabilities, ratings)."""
    path = Path(path)
    if not path.is_file():
        raise CrossEvalDataError(f"no CrossEval file at {path}; download {DATASET}/{FILE}")
    items = []
    for line, row in _rows(path):
        where = f"{path.name} line {line} (prompt_id {row.get('prompt_id')!r})"
        slug = SLUGS.get(str(row["capability"]).strip().lower())
        if slug is None:
            raise CrossEvalDataError(
                f"{where}: unknown capability {row['capability']!r}; CrossEval's are "
                f"{', '.join(CAPABILITIES.values())}"
            )
        references = []
        for i in RESPONSES:
            ratings, explanations = [], []
            for j in RATERS:
                rating = _rating(row[f"response_{i}_human_{j}_rating"], f"{where} rating {i}.{j}")
                if rating is not None:
                    ratings.append(rating)
                    explanations.append(str(row[f"response_{i}_human_{j}_explanation"] or ""))
            response = "" if _is_empty(row[f"response_{i}"]) else str(row[f"response_{i}"])
            references.append(Reference(response, tuple(ratings), tuple(explanations)))
        items.append(
            Item(
                prompt_id=str(row["prompt_id"]).strip(),
                capability=slug,
                difficulty=str(row["difficulty"] or "").strip(),
                l1_category=str(row["l1_category"] or "").strip(),
                l2_category=str(row["l2_category"] or "").strip(),
                prompt=str(row["prompt"] or ""),
                attached_file=""
                if _is_empty(row["attached_file"])
                else row["attached_file"].strip(),
                references=tuple(references),
            )
        )
    if not items:
        raise CrossEvalDataError(f"{path} has a header but no rows; download the file again")
    return items


# ---------------------------------------------------------------------- attachments
@dataclass(frozen=True)
class Attachment:
    """What an item's attachment is here: its kind and, for text, its content."""

    kind: str  # "none", "text", "image", "binary", "missing"
    text: str | None = None
    name: str = ""


def attachment_name(url: str) -> str:
    """The file name an attachment is looked up by: the last part of the URL's path."""
    return unquote(Path(urlparse(url).path).name)


def read_attachment(url: str, directory: Path | None) -> Attachment:
    """Find an item's attachment under ``directory`` and tell what kind it is."""
    if not url:
        return Attachment("none")
    name = attachment_name(url)
    path = directory / name if directory is not None and name else None
    if path is None or not path.is_file():
        kind = "image" if name.lower().endswith(IMAGE_SUFFIXES) else "missing"
        return Attachment(kind, None, name)
    data = path.read_bytes()
    if name.lower().endswith(IMAGE_SUFFIXES) or data.startswith(IMAGE_MAGIC):
        return Attachment("image", None, name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Attachment("binary", None, name)
    return Attachment("text", text, name)


def human_judgments(mirror: Path | None) -> list[tuple[str, str, float, str]]:
    """(prompt, response, mean human rating, explanations) of every reference response:
    what ``--judge replay:crosseval-human`` replays."""
    from harness.weights.hub import Requirement, resolve_all

    (dataset,) = resolve_all(
        [Requirement(DATASET, "datasets", (FILE,))], mirror=mirror, needed_by="crosseval-human"
    )
    pairs = []
    for item in load_items(Path(dataset.path) / FILE):
        for reference in item.references:
            if reference.response and reference.ratings:
                mean = sum(reference.ratings) / len(reference.ratings)
                pairs.append(
                    (item.prompt, reference.response, mean, " | ".join(reference.explanations))
                )
    return pairs
