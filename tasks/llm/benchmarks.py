"""lm-eval tasks as the LLM suites score them: data files, splits, validation carve.

A :class:`Benchmark` is one registered lm-eval task (its prompt, few-shot sampling, filters
and metrics are lm-eval's own) plus where its hub dataset keeps each split's files. The
files are found in a hub snapshot or a mirror (``DIR/datasets/<id>/``) under the layouts
the hub serves: ``<config>/<split>-*.parquet`` (openai/gsm8k, facebook/xnli), the parquet
conversion branch ``<config>/<split>/*.parquet`` or ``<config>/*-<split>.parquet``
(juletxara/mgsm, whose main branch is a loading script that datasets ≥ 4 cannot run) and
``data/<config>.jsonl`` (facebook/belebele).

Splits. ``test`` is the split lm-eval scores (``test_split``, else ``validation_split``:
XNLI is scored on validation). ``validation`` — where hyperparameters are chosen — is the
fixed 10% carve of the dataset's training split where it has one of at least
:data:`MIN_TRAIN_ROWS` rows (GSM8K, XNLI; few-shot examples then come from the other
90%); a benchmark without one (MGSM's train split is its 8 exemplars, Belebele has only
test) carves its 10% out of the scored split, and its ``test`` is then the other 90%, so
selection never sees a scored item (the record's details give the rows scored).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cache import atomic_path, cached_directory, content_key
from harness.errors import ArtifactNotFoundError, HarnessError
from harness.evaluation.lm_harness import registered_config
from harness.splits import VALIDATION_FRACTION, VALIDATION_SEED, validation_indices
from harness.weights.hub import Requirement, ResolvedArtifact

MIN_TRAIN_ROWS = 100
DATA_FORMAT = 1  # bump when the carve files change


@dataclass(frozen=True)
class Benchmark:
    """One lm-eval task: ``task`` (registered name), ``metric`` (the ``"<metric>,<filter>"``
    key the suite ranks by), ``chat`` (scored through the tokenizer's chat template)."""

    task: str
    metric: str
    chat: bool = False

    def config(self) -> dict[str, Any]:
        return _registered(self.task)

    @property
    def dataset(self) -> str:
        return str(self.config()["dataset_path"])

    @property
    def subset(self) -> str | None:
        name = self.config().get("dataset_name")
        return str(name) if name else None

    def hub_splits(self) -> dict[str, str]:
        """lm-eval's split roles (test_split, training_split, ...) → hub split names."""
        config = self.config()
        keys = ("test_split", "validation_split", "training_split", "fewshot_split")
        return {key: str(config[key]) for key in keys if config.get(key)}

    def scored_split(self) -> str:
        splits = self.hub_splits()
        return splits.get("test_split") or splits["validation_split"]

    def requirement(self) -> Requirement:
        return dataset_requirement(self.dataset, [self.subset] if self.subset else [])


@functools.cache
def _registered(task: str) -> dict[str, Any]:
    return registered_config(task)


#: Datasets whose main branch is a loading script: the mirror holds the hub's parquet
#: conversion (``refs/convert/parquet``) instead.
CONVERTED = {"juletxara/mgsm"}


def dataset_requirement(dataset: str, subsets: list[str]) -> Requirement:
    """The hub dataset with only the subsets' files (one ``--include`` per subset)."""
    if dataset == "facebook/belebele":
        patterns = tuple(f"data/{subset}.jsonl" for subset in subsets)
    else:
        patterns = tuple(f"{subset}/*" for subset in subsets)
    revision = "refs/convert/parquet" if dataset in CONVERTED else None
    return Requirement(dataset, "datasets", patterns or None, revision=revision)


def split_files(root: Path, subset: str | None, split: str) -> list[Path]:
    """The files of one hub split in a snapshot, under any of the hub's layouts."""
    root = Path(root)
    folder = root / subset if subset else root
    patterns = [f"{split}-*.parquet", f"{split}/*.parquet", f"*-{split}.parquet"]
    patterns += [f"{split}.parquet", f"{split}.jsonl", f"{split}-*.jsonl"]
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return found
    if subset and split == "test":  # facebook/belebele: one JSON-lines file per language
        single = root / "data" / f"{subset}.jsonl"
        if single.is_file():
            return [single]
    if not subset:
        return sorted((root / "data").glob(f"{split}-*.parquet"))
    return []


def check_files(benchmark: Benchmark, data: ResolvedArtifact) -> None:
    """Every split the task reads is in the snapshot, or one line with the fetch command."""
    missing = [
        split
        for split in dict.fromkeys(benchmark.hub_splits().values())
        if not split_files(data.path, benchmark.subset, split)
    ]
    if missing:
        requirement = benchmark.requirement()
        from harness.weights.hub import download_command

        depth = len(data.id.split("/"))  # DIR/datasets/<org>/<name> -> DIR
        target = str(Path(data.path).parents[depth]) if data.source == "mirror" else "DIR"
        command = download_command(requirement, target)
        where = f"{benchmark.subset}/" if benchmark.subset else ""
        raise ArtifactNotFoundError(
            f"{benchmark.dataset} at {data.path} lacks {where}{', '.join(missing)} (parquet or "
            f"JSON lines), which lm-eval's {benchmark.task} reads; fetch it with `{command}`"
        )


def _read(files: list[Path]) -> Any:
    import pandas as pd

    try:
        frames = [
            pd.read_json(path, lines=True, dtype=False)  # "2" stays a string
            if path.suffix in (".jsonl", ".json")
            else pd.read_parquet(path)
            for path in files
        ]
    except Exception as error:  # pyarrow and pandas raise several types for a damaged file
        raise HarnessError(
            f"{files[0]} is unreadable ({type(error).__name__}); download it again"
        ) from None
    return pd.concat(frames, ignore_index=True)


def _rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    if all(path.suffix == ".parquet" for path in files):
        return sum(pq.ParquetFile(path).metadata.num_rows for path in files)
    return len(_read(files))


def training_split(benchmark: Benchmark, data: ResolvedArtifact) -> str | None:
    """The hub split validation is carved from when it is not the scored one: the task's
    ``training_split``, else the dataset's ``train`` (gsm8k_cot's exemplars are fixed, but
    GSM8K still has a train split), if it has at least :data:`MIN_TRAIN_ROWS` rows."""
    for name in (benchmark.hub_splits().get("training_split"), "train"):
        if name and name != benchmark.scored_split():
            files = split_files(data.path, benchmark.subset, name)
            if files and _rows(files) >= MIN_TRAIN_ROWS:
                return name
    return None


@functools.cache
def carve_rule(benchmark: Benchmark, data: ResolvedArtifact) -> str:
    """Where ``validation`` comes from: ``"train"`` (a carve of the training split) or
    ``"scored"`` (a carve of the scored split, which then loses those rows)."""
    return "train" if training_split(benchmark, data) else "scored"


def data_files(benchmark: Benchmark, data: ResolvedArtifact, split: str) -> dict[str, str]:
    """Hub split name → one local file for the suite split ``split`` of ``benchmark``.

    ``test`` reads the official files (copied into one parquet file when there are several
    or when the scored split loses its validation carve); ``validation`` reads the carve.
    Derived files are written once into the harness cache, keyed by the snapshot.
    """
    if split not in ("test", "validation"):
        raise ValueError(f"{benchmark.task}: no split {split!r} (test or validation)")
    check_files(benchmark, data)
    roles = benchmark.hub_splits()
    scored = benchmark.scored_split()
    training = training_split(benchmark, data)
    # hub split name -> (source hub split, part of it: "all", "rest" or "held-out")
    plan: dict[str, tuple[str, str]] = {name: (name, "all") for name in roles.values()}
    if training is None:  # the scored split gives up its held-out 10%
        plan[scored] = (scored, "held-out" if split == "validation" else "rest")
    elif split == "validation":  # scored role reads the train carve, few-shot the rest
        plan[scored] = (training, "held-out")
        if training in plan:
            plan[training] = (training, "rest")
    files = {}
    for name, (source, part) in plan.items():
        originals = split_files(data.path, benchmark.subset, source)
        if part == "all" and len(originals) == 1 and originals[0].suffix == ".parquet":
            files[name] = str(originals[0])
        else:
            files[name] = str(_derived(benchmark, data, source, part, originals))
    return files


def _derived(
    benchmark: Benchmark, data: ResolvedArtifact, source: str, part: str, originals: list[Path]
) -> Path:
    """One parquet file with ``part`` ("all", "rest" or "held-out") of a hub split."""
    key = content_key(
        DATA_FORMAT,
        benchmark.dataset,
        benchmark.subset,
        source,
        part,
        data.identity(),
        {"fraction": VALIDATION_FRACTION, "seed": VALIDATION_SEED},
    )[:16]

    def build(folder: Path) -> None:
        frame = _read(originals)
        if part != "all":
            rest, held_out = validation_indices(len(frame))
            frame = frame.iloc[held_out if part == "held-out" else rest]
        with atomic_path(folder / f"{source}.parquet") as temporary:
            frame.reset_index(drop=True).to_parquet(temporary)

    folder = cached_directory(key, build, namespace="llm-data")
    return folder / f"{source}.parquet"


def split_description(rules: Mapping[str, str]) -> dict[str, str]:
    """The record's ``suite.splits``: what test and validation are, per carve rule."""
    by_rule: dict[str, list[str]] = {}
    for task, rule in rules.items():
        by_rule.setdefault(rule, []).append(task)
    test = ["lm-eval's scored split of each task (test; validation for xnli)"]
    validation = []
    if by_rule.get("train"):
        validation.append(
            f"{', '.join(by_rule['train'])}: a fixed {VALIDATION_FRACTION:.0%} of the "
            f"training split (seed {VALIDATION_SEED}); few-shot examples from the other 90%"
        )
    if by_rule.get("scored"):
        names = ", ".join(by_rule["scored"])
        validation.append(
            f"{names}: no training split to carve, so a fixed {VALIDATION_FRACTION:.0%} of "
            f"the scored split (seed {VALIDATION_SEED}), held out"
        )
        test.append(f"{names}: the other 90% of it")
    return {"test": "; ".join(test), "validation": "; ".join(validation)}
