"""The expert pool: a base checkpoint and one fine-tuned checkpoint per task, read lazily.

Merging methods see parameters one tensor at a time, read straight from safetensors
files, so merging N experts needs about N + 2 tensors in memory plus the output, never N
whole models. The pool checks up front that every expert has exactly the base's tensor
names and shapes, so a mismatch fails before any work with the name of the culprit.

One tensor can itself be large: Llama-3.2-1B's embedding has 262M entries, 1 GiB per
expert in float32, and a method's temporaries multiply that. A merge whose rows depend
only on the same rows of its inputs (element-wise merges, row-wise ranking) declares
itself ``rowwise``; the pool then streams matrices above ``chunk_elements`` entries in
slices of rows, read from the files slice by slice, so memory stays bounded by the chunk
size whatever the vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from harness.errors import CheckpointError
from harness.merging.timing import timed
from harness.progress import progress_bar

# Matrices above this many entries are streamed in row slices by row-wise merges: 64 MiB
# per expert in float32. Every ViT-B/L tensor fits in one piece; Llama's embedding is 16.
CHUNK_ELEMENTS = 1 << 24
# Matrices above this many entries are too large to hold whole for every expert (8
# float32 copies of Llama-3.1-8B's 525M-entry embedding are 16.8 GB): methods that need a
# whole-tensor statistic (norms, order statistics, a spectrum) gather it over row slices
# for these instead of loading them whole. Every ViT tensor and every Llama block matrix
# is below it; only the vocabulary-sized embedding and head of large LLMs are above.
WHOLE_ELEMENTS = 1 << 27
# A method that reads the pool several times (TIES: two statistics passes, then the
# merge) may hold it in memory between passes when the whole pool, in the compute dtype,
# fits in this many bytes (``ExpertPool.resident``): 9 ViT-B/32 models do, 2 Llama-1B
# models do not, so LLM pools keep streaming.
RESIDENT_BYTES = 4 << 30

Rows = tuple[int, int]
KeyMap = Callable[[str], str | None]


@dataclass(frozen=True)
class Checkpoint:
    """Weights in a directory (a hub snapshot) or a single file.

    ``key_map`` maps a stored tensor name to its name in the pool, or to None to leave the
    tensor out (a CLIP vision pool keeps only ``vision_model.*`` of a full CLIPModel).
    """

    path: Path
    name: str
    key_map: KeyMap | None = None

    def files(self) -> list[Path]:
        path = Path(self.path)
        if path.is_file():
            return [path]
        if not path.is_dir():
            raise CheckpointError(
                f"checkpoint {self.name!r} is missing: {path} does not exist; "
                "fetch it again or point the mirror at the right directory"
            )
        index = path / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError) as error:
                raise CheckpointError(
                    f"checkpoint {self.name!r} has a corrupt {index.name} ({error}); "
                    "download it again"
                ) from None
            return [path / file for file in sorted(set(weight_map.values()))]
        single = path / "model.safetensors"
        if single.is_file():
            return [single]
        found = sorted(path.glob("*.safetensors"))
        if found:
            return found
        raise CheckpointError(
            f"checkpoint {self.name!r} has no safetensors weights in {path}; "
            "convert it with `harness convert` or download the safetensors files"
        )

    @cached_property
    def index(self) -> dict[str, tuple[Path, str]]:
        """Pool name → (file, stored name), in the stored order."""
        index: dict[str, tuple[Path, str]] = {}
        for file in self.files():
            if not file.is_file():
                raise CheckpointError(
                    f"checkpoint {self.name!r} lacks shard {file.name}; download it again"
                )
            try:
                with safe_open(str(file), framework="pt") as handle:
                    stored_names = list(handle.keys())
            except (SafetensorError, OSError, ValueError) as error:
                raise CheckpointError(
                    f"checkpoint {self.name!r} is corrupt: {file} is not a readable "
                    f"safetensors file ({error}); download or rebuild it"
                ) from None
            for stored in stored_names:
                name = self.key_map(stored) if self.key_map else stored
                if name is not None:
                    index[name] = (file, stored)
        if not index:
            raise CheckpointError(f"checkpoint {self.name!r} holds no tensors the suite uses")
        return index

    def meta(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name → (shape, dtype) without reading tensor data."""
        result = {}
        by_file: dict[Path, list[tuple[str, str]]] = {}
        for name, (file, stored) in self.index.items():
            by_file.setdefault(file, []).append((name, stored))
        for file, names in by_file.items():
            with safe_open(str(file), framework="pt") as handle:
                for name, stored in names:
                    view = handle.get_slice(stored)
                    result[name] = (tuple(view.get_shape()), _dtype(view.get_dtype()))
        return {name: result[name] for name in self.index}

    def tensor(
        self,
        name: str,
        device: str | torch.device = "cpu",
        rows: Rows | None = None,
        handles: dict[Path, Any] | None = None,
    ) -> torch.Tensor:
        """The tensor, or only its rows ``[start, stop)`` (read without the rest).

        ``handles`` keeps each file open between calls (its mapping, and the pages already
        read, stay in memory while the dict holds it); by default each call opens the
        file and the pages go when the tensor does."""
        file, stored = self.index[name]
        try:
            if handles is not None:
                handle = handles.get(file)
                if handle is None:
                    handle = handles[file] = safe_open(str(file), framework="pt")
                if rows is not None:
                    return handle.get_slice(stored)[rows[0] : rows[1]].to(device)
                return handle.get_tensor(stored).to(device)
            if rows is not None:  # slices are read on the CPU, then moved
                with safe_open(str(file), framework="pt") as handle:
                    return handle.get_slice(stored)[rows[0] : rows[1]].to(device)
            with safe_open(str(file), framework="pt", device=str(device)) as handle:
                return handle.get_tensor(stored)
        except (SafetensorError, OSError) as error:
            raise CheckpointError(
                f"checkpoint {self.name!r}: cannot read {name} from {file} ({error}); "
                "the file is damaged, download or rebuild it"
            ) from None

    def state_dict(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        return {name: self.tensor(name, device) for name in self.index}

    def sha256(self) -> str:
        """Content hash over the weight files, for records of local artifacts."""
        digest = hashlib.sha256()
        for file in self.files():
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _dtype(code: str) -> torch.dtype:
    return _DTYPES.get(code, torch.float32)


@dataclass
class TensorGroup:
    """One parameter across the pool: the base tensor and each task's expert tensor, or
    the same slice of rows of each (``rows``) when a row-wise merge streams a large
    matrix in pieces."""

    name: str
    base: torch.Tensor
    experts: list[torch.Tensor]
    tasks: list[str]
    seed: int = 0
    rows: Rows | None = None
    _task_vectors: list[torch.Tensor] | None = field(default=None, repr=False)

    @property
    def task_vectors(self) -> list[torch.Tensor]:
        """τ_t = θ_t − θ_0 (Ilharco et al., 2023), computed once per group."""
        if self._task_vectors is None:
            self._task_vectors = [expert - self.base for expert in self.experts]
        return self._task_vectors

    def generator(self) -> torch.Generator:
        """A generator seeded by (seed, tensor name, first row of a slice): same seed, same
        random draws, whatever order the tensors are visited in."""
        key = f"{self.seed}:{self.name}" + ("" if self.rows is None else f":{self.rows[0]}")
        digest = hashlib.sha256(key.encode()).digest()
        generator = torch.Generator(device=self.base.device)
        generator.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
        return generator


class ExpertPool:
    """A base checkpoint plus one expert per task, checked to match, read tensor by tensor."""

    def __init__(
        self,
        base: Checkpoint,
        experts: Mapping[str, Checkpoint],
        *,
        device: str | torch.device = "cpu",
        compute_dtype: torch.dtype = torch.float32,
        chunk_elements: int = CHUNK_ELEMENTS,
        whole_elements: int = WHOLE_ELEMENTS,
    ) -> None:
        if not experts:
            raise CheckpointError("the expert pool is empty: give at least one expert")
        self.base = base
        self.experts = dict(experts)
        self.device = torch.device(device)
        self.compute_dtype = compute_dtype
        self.chunk_elements = chunk_elements
        self.whole_elements = whole_elements
        self._meta = base.meta()
        for task, expert in self.experts.items():
            self._check_matches(task, expert)
        self._resident: dict[tuple[str, str, Rows | None], torch.Tensor] | None = None
        self._handles: dict[Path, Any] | None = None

    def _check_matches(self, task: str, expert: Checkpoint) -> None:
        expert_meta = expert.meta()
        missing = [name for name in self._meta if name not in expert_meta]
        extra = [name for name in expert_meta if name not in self._meta]
        where = f"expert {task!r} ({expert.name})"
        fix = "experts must be fine-tuned from the suite's base model"
        if missing:
            raise CheckpointError(
                f"{where} lacks {len(missing)} tensor(s) of the base, e.g. {missing[0]}; {fix}"
            )
        if extra:
            raise CheckpointError(
                f"{where} has {len(extra)} tensor(s) the base lacks, e.g. {extra[0]}; {fix}"
            )
        for name, (shape, _) in self._meta.items():
            if expert_meta[name][0] != shape:
                raise CheckpointError(
                    f"{where}: {name} has shape {list(expert_meta[name][0])} but the base has "
                    f"{list(shape)}; {fix}"
                )

    @property
    def tasks(self) -> list[str]:
        return list(self.experts)

    @property
    def names(self) -> list[str]:
        return list(self._meta)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._meta[name][0]

    def dtype(self, name: str) -> torch.dtype:
        return self._meta[name][1]

    def is_mergeable(self, name: str) -> bool:
        """Floating-point tensors are merged; integer buffers are copied from the base."""
        return self._meta[name][1].is_floating_point

    def num_parameters(self) -> int:
        total = 0
        for name in self.mergeable_names():
            count = 1
            for size in self.shape(name):
                count *= size
            total += count
        return total

    def mergeable_names(self) -> list[str]:
        return [name for name in self._meta if self.is_mergeable(name)]

    def base_tensor(self, name: str, rows: Rows | None = None) -> torch.Tensor:
        return self._load(self.base, name, rows)

    def expert_tensor(self, task: str, name: str, rows: Rows | None = None) -> torch.Tensor:
        return self._load(self.experts[task], name, rows)

    def _load(self, checkpoint: Checkpoint, name: str, rows: Rows | None = None) -> torch.Tensor:
        resident = self._resident
        key = (str(checkpoint.path), name, rows)
        if resident is not None and key in resident:
            return resident[key]
        with timed("read"):
            tensor = checkpoint.tensor(name, self.device, rows, self._handles)
            if tensor.is_floating_point():
                tensor = tensor.to(self.compute_dtype)
        if resident is not None:
            resident[key] = tensor
        return tensor

    def resident_bytes(self) -> int:
        """The pool's mergeable tensors, base and experts, in the compute dtype."""
        itemsize = torch.empty((), dtype=self.compute_dtype).element_size()
        return self.num_parameters() * itemsize * (len(self.experts) + 1)

    @contextmanager
    def resident(self, limit: int = RESIDENT_BYTES) -> Iterator[bool]:
        """Within the block, keep every tensor read (and its file open) so that later
        passes over the pool read memory instead of the files: when the whole pool fits
        in ``limit`` bytes (``resident_bytes``); otherwise, or when already resident,
        nothing changes. Yields whether the pool is held. Callers must not modify the
        tensors they are given (later passes see the same ones)."""
        if self._resident is not None or self.resident_bytes() > limit:
            yield self._resident is not None
            return
        self._resident, self._handles = {}, {}
        try:
            yield True
        finally:
            self._resident, self._handles = None, None

    def is_huge(self, name: str) -> bool:
        """A matrix above ``whole_elements`` entries: never loaded whole for every expert."""
        shape = self.shape(name)
        return len(shape) == 2 and shape[0] * shape[1] > self.whole_elements

    def pieces(self, name: str, rowwise: bool = False) -> list[Rows | None]:
        """How ``name`` is streamed: whole (``[None]``), or, for a row-wise merge of a
        matrix above ``chunk_elements`` entries, as consecutive row slices."""
        shape = self.shape(name)
        if not rowwise or len(shape) != 2 or shape[0] * shape[1] <= self.chunk_elements:
            return [None]
        step = max(1, self.chunk_elements // shape[1])
        return [(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]

    def groups(
        self, names: Sequence[str] | None = None, seed: int = 0, *, rowwise: bool = False
    ) -> Iterator[TensorGroup]:
        """Yield mergeable parameters one at a time (in row slices where ``pieces`` says
        so), in the base's order."""
        for name in names if names is not None else self.mergeable_names():
            for rows in self.pieces(name, rowwise):
                yield TensorGroup(
                    name=name,
                    base=self.base_tensor(name, rows),
                    experts=[self.expert_tensor(task, name, rows) for task in self.tasks],
                    tasks=self.tasks,
                    seed=seed,
                    rows=rows,
                )

    def stream(
        self, *, seed: int = 0, rowwise: bool = False, desc: str = "", progress: bool = True
    ) -> Iterator[TensorGroup]:
        """``groups`` over every mergeable tensor, with a progress bar."""
        names = self.mergeable_names()
        total = sum(len(self.pieces(name, rowwise)) for name in names)
        groups = self.groups(names, seed, rowwise=rowwise)
        return progress_bar(groups, total=total, desc=desc, enabled=progress)

    def place(
        self, merged: dict[str, torch.Tensor], group: TensorGroup, result: torch.Tensor
    ) -> None:
        """Store ``result`` for ``group`` in ``merged`` in the stored dtype, writing a row
        slice into its place in the whole tensor."""
        with timed("output"):
            self._place(merged, group, result)

    def _place(
        self, merged: dict[str, torch.Tensor], group: TensorGroup, result: torch.Tensor
    ) -> None:
        if result.shape != group.base.shape:
            where = "" if group.rows is None else f" rows {group.rows[0]}:{group.rows[1]}"
            raise RuntimeError(
                f"the method's result for {group.name}{where} has shape "
                f"{list(result.shape)}, expected {list(group.base.shape)}"
            )
        result = result.to(self.dtype(group.name))
        if group.rows is None:
            merged[group.name] = result
            return
        whole = merged.get(group.name)
        if whole is None:
            whole = torch.empty(self.shape(group.name), dtype=result.dtype, device=result.device)
            merged[group.name] = whole
        whole[group.rows[0] : group.rows[1]] = result

    def base_state(self) -> dict[str, torch.Tensor]:
        return {name: self.base_tensor(name) for name in self.names}

    def expert_state(self, task: str) -> dict[str, torch.Tensor]:
        return {name: self.expert_tensor(task, name) for name in self.names}

    def subset(self, tasks: Sequence[str]) -> ExpertPool:
        """A pool over some of the tasks (same base), e.g. for leave-one-out studies."""
        pool = object.__new__(ExpertPool)
        pool.__dict__.update(self.__dict__)
        pool.experts = {task: self.experts[task] for task in tasks}
        return pool

    def output_state(self, merged: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Complete a merged state: keep the base's non-float tensors, cast to stored dtypes."""
        state = {}
        with timed("output"):
            for name in self.names:
                if name in merged:
                    state[name] = merged[name].to(self.dtype(name))
                else:
                    state[name] = self.base_tensor(name).to(self.dtype(name))
        return state


def load_state_strict(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, fits: str, fix: str
) -> torch.nn.Module:
    """``model`` with ``state`` loaded (strict), in eval mode; a mismatch is one line
    naming the first offending tensor ("state does not fit <fits> (...); <fix>")."""
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise CheckpointError(f"state does not fit {fits} ({detail}); {fix}") from None
    return model.eval()
