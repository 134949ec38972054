"""mini8: vit8's protocol at a size that builds offline on a 2-core CPU in minutes.

Eight 16×16 image classification tasks (tasks/mini8_data.py: two real handwritten-digit
sets shipped by pip packages, six drawn by seeded procedures), a small CLIP vision tower
the harness pretrains itself, one frozen linear head per task and one fine-tuned expert
per task (tasks/mini8_build.py). Everything built is cached under the harness cache,
keyed by the recipe, the data and the package versions, so later runs load in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from harness.cache import atomic_path, cached_directory, content_key, file_sha256
from harness.progress import note
from harness.registry import register_suite
from harness.staged_build import make_stage, run_stages
from harness.suite import Artifact, ClassificationSuite
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.vision.mini8 import build as build
from tasks.vision.mini8 import data as data

RECIPE = build.Recipe()
BUILD_VERSION = 1  # bump when the recipe's code changes meaning


@register_suite(
    "mini8",
    reference="https://arxiv.org/abs/2212.04089",
    description="Eight small image tasks, offline: vit8's protocol on a CPU scale.",
)
class Mini8(ClassificationSuite):
    """vit8's protocol offline: pretrained tower, frozen per-task heads, one expert per task."""

    tasks = list(data.TASKS)
    metric = "accuracy"

    # ------------------------------------------------------------------ building
    def _key(self) -> str:
        packages = {name: version(name) for name in ("torch", "scikit-learn", "mlxtend")}
        return content_key("mini8", BUILD_VERSION, RECIPE.to_json(), packages)

    @property
    def checkpoint_set(self) -> str:
        return f"built:mini8-{self._key()[:8]}"

    def prepare(self) -> None:
        self.root = cached_directory(
            self._key(),
            self._build,
            namespace="mini8",
            resumable=True,
            on_wait=lambda: note("waiting for another process that is building mini8"),
        )
        self._data = load_file(str(self.root / "data.safetensors"))
        heads = load_file(str(self.root / "heads.safetensors"))
        self._heads = {task: _head(heads, task) for task in data.TASKS}

    def _build(self, directory: Path) -> None:
        """Build in stages (data, pretrain, heads, one per expert), each kept as it ends.

        A stage's file is written atomically into the build's work directory, which
        survives an interruption, so a rerun loads the finished stages and continues.
        Every stage starts from the same RNG state (see :func:`_stage`), so a resumed
        build writes the same bytes as one that ran straight through.
        """
        stages = ["data", "base", "heads", *data.TASKS]
        run_stages(
            "mini8",
            directory,
            stages,
            lambda name: _stage_path(directory, name).is_file(),
            lambda: self._build_stages(directory, self.context.progress),
        )

    def _build_stages(self, directory: Path, progress: bool) -> None:
        def make_data() -> dict[str, torch.Tensor]:
            tensors: dict[str, torch.Tensor] = {}
            for task in progress_tasks(progress, "mini8 data"):
                for split, task_data in data.load(task, RECIPE.seed).items():
                    images = (task_data.images * 255).round().to(torch.uint8)
                    tensors[f"{task}/{split}/images"] = images.contiguous()
                    tensors[f"{task}/{split}/labels"] = task_data.labels.contiguous()
            return tensors

        tensors = _stage(directory, "data", make_data, "data (8 tasks)")
        train = {
            task: (tensors[f"{task}/train/images"], tensors[f"{task}/train/labels"])
            for task in data.TASKS
        }
        base_state = _stage(
            directory,
            "base",
            lambda: _contiguous(build.pretrain(train, RECIPE, progress).state_dict()),
            f"pretrained tower ({RECIPE.pretrain_steps} steps)",
        )

        def make_heads() -> dict[str, torch.Tensor]:
            tower = self.build_model(base_state)
            heads = {task: build.fit_head(tower, *train[task], RECIPE) for task in data.TASKS}
            return {f"{task}.{name}": t for task, head in heads.items() for name, t in _items(head)}

        head_tensors = _stage(directory, "heads", make_heads, "heads (logistic regression)")
        for number, task in enumerate(data.TASKS, 1):

            def make_expert(task: str = task) -> dict[str, torch.Tensor]:
                head = _head(head_tensors, task)
                expert = build.finetune(base_state, head, *train[task], RECIPE, task, progress)
                return _contiguous(expert.state_dict())

            label = f"expert {number}/{len(data.TASKS)} {task} ({RECIPE.finetune_steps} steps)"
            _stage(directory, task, make_expert, label)

    # ------------------------------------------------------------------ contract
    def pool(self) -> ExpertPool:
        return ExpertPool(
            Checkpoint(self.root / "base.safetensors", "harness/mini8-base"),
            {
                task: Checkpoint(self.root / f"{task}.safetensors", f"harness/mini8-{task}")
                for task in self.tasks
            },
            device=self.context.device,
        )

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        tower = build.PooledVisionTower(RECIPE.config())
        tower.load_state_dict(dict(state), strict=True)
        return tower.eval()

    def head(self, task: str) -> torch.nn.Module:
        return self._heads[task]

    def batches(
        self, task: str, split: str, *, batch_size: int = 512, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images = self._data[f"{task}/{split}/images"]
        labels = self._data[f"{task}/{split}/labels"]
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        for start in range(0, len(labels), batch_size):
            stop = start + batch_size
            yield build.normalise(images[start:stop]), labels[start:stop]

    def artifacts(self) -> list[Artifact]:
        built = [("base", "base"), ("heads", "heads"), ("data", "data")]
        built += [(f"expert:{task}", task) for task in self.tasks]
        artifacts = [
            Artifact(role, f"harness/mini8-{name}", "built", sha256=self._sha(name))
            for role, name in built
        ]
        artifacts += [
            Artifact(
                "dataset:digits", "scikit-learn:load_digits", "package", version("scikit-learn")
            ),
            Artifact("dataset:mnist", "mlxtend:mnist_5k", "package", version("mlxtend")),
        ]
        return artifacts

    def _sha(self, name: str) -> str:
        if not hasattr(self, "_hashes"):
            self._hashes: dict[str, str] = {}
        if name not in self._hashes:
            self._hashes[name] = file_sha256(self.root / f"{name}.safetensors")
        return self._hashes[name]


def _stage_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.safetensors"


def _stage(
    directory: Path, name: str, make: Callable[[], dict[str, torch.Tensor]], label: str
) -> dict[str, torch.Tensor]:
    """The tensors of one build stage: read back if an earlier run finished it, else made.

    ``make`` runs from the global RNG seeded with the recipe's seed, whatever ran before
    it in this process, and the caller's RNG state is restored afterwards: a stage gives
    the same bytes whether the stages before it ran now or in an interrupted run.
    """
    path = _stage_path(directory, name)
    if path.is_file():
        return load_file(str(path))
    tensors = make_stage("mini8", label, RECIPE.seed, make)
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary))
    return tensors


def _head(tensors: Mapping[str, torch.Tensor], task: str) -> torch.nn.Linear:
    weight, bias = tensors[f"{task}.weight"], tensors[f"{task}.bias"]
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict({"weight": weight, "bias": bias})
    return head.eval().requires_grad_(False)


def _contiguous(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().contiguous() for name, tensor in state.items()}


def _items(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(_contiguous(module.state_dict()).items())


def progress_tasks(progress: bool, desc: str) -> Iterator[str]:
    from harness.progress import progress_bar

    return progress_bar(list(data.TASKS), desc=desc, enabled=progress)
