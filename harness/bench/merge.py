"""``harness bench merge``: merge wall time and peak memory of data-free methods.

Checkpoints are synthetic but real-shaped: the architecture's parameter names and shapes
come from its transformers config, instantiated on ``torch.device("meta")`` (no memory,
no download); the base gets random weights and each of N experts is the base plus small
noise, written as safetensors to a scratch directory. Every (method, repeat) then runs
in a fresh Python subprocess, because a process's peak resident memory (``ru_maxrss``)
cannot be reset (on Linux the peak RSS, VmHWM, is reset through /proc/self/clear_refs
right before the merge): the subprocess reports its resident memory right before the
merge (imports and the opened pool) and its peak during the merge, so "merge MiB" is
what the merge itself added. The expert pool streams tensor by tensor, so a data-free
merge should add about one model (its output) plus a few tensors, not N models. A
method that serves each task its own model (TALL masks, EMR, PERU) is timed up to the
first task's model, since those are built lazily.

Methods that need data (they touch the suite: its data, heads or backbone) are skipped
with a note; so are methods that need a different number of experts.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError

MIB = 1024 * 1024
PER_TASK_NOTE = "per-task models: timed to build the first"


def _vit(hidden: int, layers: int, heads: int, patch: int) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from transformers import CLIPVisionConfig, CLIPVisionModel

        config = CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            patch_size=patch,
            image_size=224,
        )
        return CLIPVisionModel(config)

    return build


def _llama_1b() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(  # Llama-3.2-1B's shapes
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


ARCHS: dict[str, tuple[Callable[[], torch.nn.Module], torch.dtype]] = {
    "vit-b-32": (_vit(768, 12, 12, 32), torch.float32),
    "vit-l-14": (_vit(1024, 24, 16, 14), torch.float32),
    "llama-1b": (_llama_1b, torch.bfloat16),
}


def architecture_shapes(arch: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Stored tensor name → (shape, dtype) of ``arch``, from a meta-device instance."""
    if arch not in ARCHS:
        raise HarnessError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHS)}")
    build, dtype = ARCHS[arch]
    with torch.device("meta"):
        model = build()
    persistent = set(model.state_dict())
    shapes = {}
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if name in persistent and name not in shapes:  # tied weights are stored once
            stored = dtype if tensor.is_floating_point() else tensor.dtype
            shapes[name] = (tuple(tensor.shape), stored)
    return shapes


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    return (0.02 * torch.randn(shape, generator=generator)).to(dtype)


def write_checkpoints(arch: str, experts: int, directory: Path, noise: float = 1e-3) -> int:
    """Write base.safetensors and expert{i}.safetensors; returns the parameter count.

    Only one model is in memory at a time: each tensor is regenerated from its seed.
    """
    from safetensors.torch import save_file

    shapes = architecture_shapes(arch)
    for index in range(experts + 1):
        state = {}
        for position, (name, (shape, dtype)) in enumerate(shapes.items()):
            tensor = _tensor(shape, dtype, position)
            if index > 0 and dtype.is_floating_point:
                generator = torch.Generator().manual_seed(1_000_003 * index + position)
                delta = noise * torch.randn(shape, generator=generator)
                tensor = (tensor.float() + delta).to(dtype)
            state[name] = tensor.contiguous()
        file = "base" if index == 0 else f"expert{index}"
        save_file(state, str(directory / f"{file}.safetensors"))
        del state
    return sum(
        int(torch.Size(shape).numel())
        for shape, dtype in shapes.values()
        if dtype.is_floating_point
    )


@dataclass
class BenchRow:
    method: str
    arch: str
    experts: int
    seconds: float | None
    peak_rss_mib: float | None
    merge_rss_mib: float | None
    cuda_mib: float | None
    output_params: int | None
    note: str = ""


class NeedsData(Exception):
    """Raised when a method touches the suite: it is data-based, not benchmarked here."""


class _NoSuite:
    def __getattr__(self, name: str) -> Any:
        raise NeedsData(name)


def data_free_context(pool: Any, device: torch.device, seed: int = 0) -> Any:
    """A method context without a suite: any use of data, heads or the backbone raises
    ``NeedsData``, which tells data-free methods from data-based ones."""
    from harness.method import MethodContext

    return MethodContext(_NoSuite(), pool, device, seed=seed, progress=False)  # type: ignore[arg-type]


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one merge in this (fresh) process and measure it."""
    from harness.method import Solution
    from harness.registry import METHODS
    from harness.weights.pool import Checkpoint, ExpertPool

    device = torch.device(spec["device"])
    directory = Path(spec["directory"])
    entry = METHODS.get(spec["method"])
    experts = {
        f"task{i}": Checkpoint(directory / f"expert{i}.safetensors", f"synthetic/expert{i}")
        for i in range(1, spec["experts"] + 1)
    }
    pool = ExpertPool(
        Checkpoint(directory / "base.safetensors", "synthetic/base"), experts, device=device
    )

    context = data_free_context(pool, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _rss_mib()
    reset = _reset_peak()  # else ru_maxrss would include the imports' peak
    torch.manual_seed(0)
    started = time.perf_counter()
    try:
        solution: Solution = entry.obj(context, **entry.defaults)
        state = solution.state
        if state is None and solution.task_states is not None:
            state = solution.task_states(pool.tasks[0])  # per-task models are built lazily
    except NeedsData as error:
        return {"skipped": f"needs data ({error}); not a data-free method"}
    except HarnessError as error:
        return {"skipped": str(error)}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    if reset:
        peak = _status_mib("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after = _rss_mib()
    if state is not None:
        params = sum(t.numel() for t in state.values() if t.is_floating_point())
    else:
        params = None
    return {
        "seconds": seconds,
        "peak_rss_mib": peak,
        "merge_rss_mib": max(0.0, peak - before),
        "cuda_mib": torch.cuda.max_memory_allocated(device) / MIB
        if device.type == "cuda"
        else None,
        "output_params": params,
        "rss_after_mib": after,
        "rss_before_mib": before,
        "per_task": solution.state is None,
    }


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, "-m", "harness.bench.merge", json.dumps(spec)]
    env = dict(os.environ)
    # A fixed mmap threshold makes glibc return freed large blocks to the OS at once, so
    # peak RSS measures live memory rather than allocator retention after streaming.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"failed: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_merge(
    methods: Sequence[str],
    arch: str,
    experts: int,
    *,
    device: str = "cpu",
    repeat: int = 1,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[BenchRow], float]:
    """Benchmark ``methods``; returns the rows and one model's size in MiB."""
    from harness.registry import METHODS

    for name in methods:
        METHODS.get(name)  # unknown names fail before any work
    if experts < 1:
        raise HarnessError("--experts must be at least 1")
    if repeat < 1:
        raise HarnessError("--repeat must be at least 1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-", dir=workdir) as scratch:
        directory = Path(scratch)
        if log:
            log(f"writing synthetic {arch} base + {experts} experts to {directory}")
        count = write_checkpoints(arch, experts, directory)
        model_mib = sum(f.stat().st_size for f in [directory / "base.safetensors"]) / MIB
        for name in methods:
            results = []
            for _ in range(repeat):
                spec = {
                    "method": name,
                    "experts": experts,
                    "device": device,
                    "directory": str(directory),
                }
                results.append(_run_worker(spec))
                if "skipped" in results[-1]:
                    break
            if "skipped" in results[-1]:
                rows.append(
                    BenchRow(
                        name,
                        arch,
                        experts,
                        None,
                        None,
                        None,
                        None,
                        None,
                        note=results[-1]["skipped"],
                    )
                )
            else:
                rows.append(
                    BenchRow(
                        name,
                        arch,
                        experts,
                        statistics.median(r["seconds"] for r in results),
                        max(r["peak_rss_mib"] for r in results),
                        max(r["merge_rss_mib"] for r in results),
                        max(r["cuda_mib"] for r in results) if device != "cpu" else None,
                        results[0]["output_params"],
                        note=PER_TASK_NOTE if results[0]["per_task"] else "",
                    )
                )
            if log:  # figures as they come, so an interrupted run still reports them
                row = rows[-1]
                if row.seconds is None:
                    log(f"{name}: skipped ({row.note})")
                else:
                    log(
                        f"{name}: {row.seconds:.2f} s, peak RSS {row.peak_rss_mib:.0f} MiB "
                        f"(merge +{row.merge_rss_mib:.0f} MiB)"
                    )
    del count
    return rows, model_mib


def format_table(rows: Sequence[BenchRow], model_mib: float, repeat: int) -> list[str]:
    header = [
        "method",
        "arch",
        "experts",
        "seconds",
        "peak RSS MiB",
        "merge MiB",
        "CUDA MiB",
        "output params",
        "note",
    ]
    body = []
    for row in rows:
        body.append(
            [
                row.method,
                row.arch,
                str(row.experts),
                "-" if row.seconds is None else f"{row.seconds:.2f}",
                "-" if row.peak_rss_mib is None else f"{row.peak_rss_mib:.0f}",
                "-" if row.merge_rss_mib is None else f"{row.merge_rss_mib:.0f}",
                "-" if row.cuda_mib is None else f"{row.cuda_mib:.0f}",
                "-" if row.output_params is None else f"{row.output_params:,}",
                row.note,
            ]
        )
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    lines.append(
        f"one model = {model_mib:.0f} MiB on disk; seconds = median of {repeat} run(s); "
        "merge MiB = peak RSS minus RSS before the merge (fresh process per run)"
    )
    return lines


def describe(rows: Sequence[BenchRow], model_mib: float) -> dict[str, Any]:
    return {"model_mib": model_mib, "rows": [asdict(row) for row in rows]}


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
