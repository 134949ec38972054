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


@dataclass(frozen=True)
class Architecture:
    """A real architecture's shapes: ``build(blocks)`` on the meta device gives every
    tensor; ``blocks`` is the real depth, ``default_blocks`` how many the bench builds
    unless told (fewer where the full model would not fit a workstation's disk)."""

    build: Callable[[int], torch.nn.Module]
    dtype: torch.dtype
    blocks: int
    default_blocks: int


def _vit(hidden: int, layers: int, heads: int, patch: int) -> Callable[[int], torch.nn.Module]:
    def build(blocks: int = layers) -> torch.nn.Module:
        from transformers import CLIPVisionConfig, CLIPVisionModel

        config = CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=blocks,
            num_attention_heads=heads,
            patch_size=patch,
            image_size=224,
        )
        return CLIPVisionModel(config)

    return build


def _llama(
    hidden: int, intermediate: int, heads: int, kv_heads: int, tied: bool
) -> Callable[[int], torch.nn.Module]:
    def build(blocks: int) -> torch.nn.Module:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=intermediate,
            num_hidden_layers=blocks,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            vocab_size=128256,
            tie_word_embeddings=tied,
        )
        return LlamaForCausalLM(config)

    return build


ARCHS: dict[str, Architecture] = {
    "vit-b-32": Architecture(_vit(768, 12, 12, 32), torch.float32, 12, 12),
    "vit-l-14": Architecture(_vit(1024, 24, 16, 14), torch.float32, 24, 24),
    # Llama-3.2-1B: hidden 2048, MLP 8192, 32 heads / 8 KV heads, 16 blocks, tied head
    "llama-1b": Architecture(_llama(2048, 8192, 32, 8, True), torch.bfloat16, 16, 16),
    # Llama-3.1-8B: hidden 4096, MLP 14336, 32 heads / 8 KV heads, 32 blocks, untied head;
    # one bf16 model is 16 GB, so the bench builds 1 block (every tensor shape, 2.5 GB)
    "llama-8b": Architecture(_llama(4096, 14336, 32, 8, False), torch.bfloat16, 32, 1),
}


def _architecture(arch: str) -> Architecture:
    if arch not in ARCHS:
        raise HarnessError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def built_blocks(arch: str, blocks: int | None = None) -> int:
    """How many of ``arch``'s blocks the bench builds (``blocks``, or its default)."""
    architecture = _architecture(arch)
    if blocks is None:
        return architecture.default_blocks
    if not 1 <= blocks <= architecture.blocks:
        raise HarnessError(
            f"--blocks must be between 1 and {architecture.blocks} for {arch}, got {blocks}"
        )
    return blocks


def architecture_shapes(
    arch: str, blocks: int | None = None
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Stored tensor name → (shape, dtype) of ``arch`` with ``blocks`` blocks (default:
    the bench's default for it), from a meta-device instance."""
    architecture = _architecture(arch)
    with torch.device("meta"):
        model = architecture.build(built_blocks(arch, blocks))
    persistent = set(model.state_dict())
    shapes = {}
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if name in persistent and name not in shapes:  # tied weights are stored once
            stored = architecture.dtype if tensor.is_floating_point() else tensor.dtype
            shapes[name] = (tuple(tensor.shape), stored)
    return shapes


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    return (0.02 * torch.randn(shape, generator=generator)).to(dtype)


def write_checkpoints(
    arch: str,
    experts: int,
    directory: Path,
    noise: float = 1e-3,
    blocks: int | None = None,
) -> int:
    """Write base.safetensors and expert{i}.safetensors; returns the parameter count.

    Only one model is in memory at a time: each tensor is regenerated from its seed.
    """
    from safetensors.torch import save_file

    shapes = architecture_shapes(arch, blocks)
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
    passes: dict[str, float] | None = None  # seconds per pass (harness.merging.timing)
    cpu_seconds: float | None = None  # user + system time of the merging process


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


def _cpu_seconds() -> float:
    """This process's CPU time (user + system, every thread): unlike wall time, it is
    not inflated when other processes hold the cores."""
    times = os.times()
    return times.user + times.system


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
    from harness.merging import timing
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
    # numba's first parallel call starts its threads and loads the compiled kernels
    # (≈0.3 s per process, like an import): paid before the clock, reported apart
    from harness.merging import kernels

    warm_up_seconds = kernels.warm_up()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _rss_mib()
    reset = _reset_peak()  # else ru_maxrss would include the imports' peak
    torch.manual_seed(0)
    timing.reset()
    cpu_started = _cpu_seconds()
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
    cpu_seconds = _cpu_seconds() - cpu_started
    passes = timing.totals()
    if reset:
        peak = _status_mib("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after = _rss_mib()
    if state is not None:
        params = sum(t.numel() for t in state.values() if t.is_floating_point())
    else:
        params = None
    difference = None
    if spec.get("compare_with") and state is not None:
        difference = _max_difference(state, Path(spec["compare_with"]))
    return {
        "passes": passes,
        "max_abs_diff": difference,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": peak,
        "merge_rss_mib": max(0.0, peak - before),
        "cuda_mib": torch.cuda.max_memory_allocated(device) / MIB
        if device.type == "cuda"
        else None,
        "output_params": params,
        "rss_after_mib": after,
        "rss_before_mib": before,
        "per_task": solution.state is None,
        "kernel_warm_up_seconds": warm_up_seconds,
    }


def _max_difference(state: dict[str, torch.Tensor], path: Path) -> float:
    """The largest |difference| between ``state`` and the same-named tensors of ``path``."""
    from safetensors import safe_open

    largest = 0.0
    with safe_open(str(path), framework="pt") as handle:
        stored = handle.keys()
        for name in stored:
            if name in state:
                other = handle.get_tensor(name).float()
                largest = max(largest, float((state[name].float() - other).abs().max()))
    return largest


def worker_environment() -> dict[str, str]:
    """The environment of every measured subprocess (the harness's and FusionBench's).

    A fixed mmap threshold makes glibc return freed large blocks to the OS at once, so
    peak RSS measures live memory rather than allocator retention after streaming.
    Passive OpenMP waits keep torch's worker threads from spinning on a shared machine:
    with the default (active) policy, element-wise ops on the 2-core bench machine ran
    10–40× slower whenever another process held a core.
    """
    env = dict(os.environ)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _run(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        command, capture_output=True, text=True, env=worker_environment(), check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"failed: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    return _run([sys.executable, "-m", "harness.bench.merge", json.dumps(spec)])


FUSIONBENCH_TIES = "fusionbench:ties"


def _run_fusionbench(python: str, directory: Path, experts: int) -> dict[str, Any]:
    """FusionBench's TIES (``fusionbench_ties.py`` under ``python``) at the harness's
    defaults (k = 0.2, λ = 1, disjoint mean); writes its merged model for the diff."""
    from methods.merging.ties import DENSITY, SCALING

    script = Path(__file__).with_name("fusionbench_ties.py")
    output = directory / "fusionbench-ties.safetensors"
    result = _run(
        [
            python,
            str(script),
            "--checkpoints",
            str(directory),
            "--experts",
            str(experts),
            "--density",
            str(DENSITY.default),
            "--scaling",
            str(SCALING.default),
            "--output",
            str(output),
        ]
    )
    result["output"] = str(output)
    return result


@dataclass
class BenchRun:
    """What one ``harness bench merge`` measured."""

    rows: list[BenchRow]
    model_mib: float
    arch: str
    blocks: int
    total_blocks: int
    comparison: dict[str, Any] | None = None  # FusionBench's TIES against the harness's


def _row(
    name: str, arch: str, experts: int, results: list[dict[str, Any]], device: str
) -> BenchRow:
    if "skipped" in results[-1]:
        return BenchRow(name, arch, experts, None, None, None, None, None, results[-1]["skipped"])
    middle = sorted(results, key=lambda r: r["seconds"])[(len(results) - 1) // 2]
    return BenchRow(
        name,
        arch,
        experts,
        statistics.median(r["seconds"] for r in results),
        max(r["peak_rss_mib"] for r in results),
        max(r["merge_rss_mib"] for r in results),
        max(r["cuda_mib"] for r in results) if device != "cpu" else None,
        results[0]["output_params"],
        note=PER_TASK_NOTE if results[0]["per_task"] else "",
        passes=middle.get("passes"),
        cpu_seconds=middle.get("cpu_seconds"),
    )


def bench_merge(
    methods: Sequence[str],
    arch: str,
    experts: int,
    *,
    device: str = "cpu",
    repeat: int = 1,
    workdir: Path | None = None,
    blocks: int | None = None,
    compare_fusionbench: str | None = None,
    log: Callable[[str], None] | None = None,
) -> BenchRun:
    """Benchmark ``methods`` on synthetic ``arch`` checkpoints (``blocks`` of its blocks);
    with ``compare_fusionbench`` (a Python with the fusion-bench package), also time
    FusionBench's TIES on the same files and compare it with the harness's ``ties``."""
    from harness.registry import METHODS

    for name in methods:
        METHODS.get(name)  # unknown names fail before any work
    if experts < 1:
        raise HarnessError("--experts must be at least 1")
    if repeat < 1:
        raise HarnessError("--repeat must be at least 1")
    depth = built_blocks(arch, blocks)
    total_blocks = _architecture(arch).blocks
    if compare_fusionbench is not None and not Path(compare_fusionbench).is_file():
        raise HarnessError(
            f"--compare-fusionbench {compare_fusionbench}: no such Python; give the python of "
            "an environment with fusion-bench installed"
        )
    if compare_fusionbench is not None and "ties" not in methods:
        methods = [*methods, "ties"]
    rows: list[BenchRow] = []
    comparison = None
    with tempfile.TemporaryDirectory(prefix="harness-bench-", dir=workdir) as scratch:
        directory = Path(scratch)
        if log:
            log(
                f"writing synthetic {arch} base + {experts} experts ({depth} of its "
                f"{total_blocks} blocks) to {directory}"
            )
        write_checkpoints(arch, experts, directory, blocks=depth)
        model_mib = (directory / "base.safetensors").stat().st_size / MIB
        fusionbench: list[dict[str, Any]] = []
        if compare_fusionbench is not None:
            for _ in range(repeat):
                fusionbench.append(_run_fusionbench(compare_fusionbench, directory, experts))
                if "skipped" in fusionbench[-1]:
                    break
            if log:
                log(f"{FUSIONBENCH_TIES}: {_describe_result(fusionbench[-1])}")
        for name in methods:
            results = []
            for _ in range(repeat):
                spec = {
                    "method": name,
                    "experts": experts,
                    "device": device,
                    "directory": str(directory),
                }
                if name == "ties" and fusionbench and "skipped" not in fusionbench[-1]:
                    spec["compare_with"] = fusionbench[-1]["output"]
                results.append(_run_worker(spec))
                if "skipped" in results[-1]:
                    break
            rows.append(_row(name, arch, experts, results, device))
            if name == "ties" and fusionbench:
                comparison = _comparison(fusionbench, results)
            if log:  # figures as they come, so an interrupted run still reports them
                log(f"{name}: {_describe_result(results[-1])}")
    return BenchRun(rows, model_mib, arch, depth, total_blocks, comparison)


def _describe_result(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"skipped ({result['skipped']})"
    text = f"{result['seconds']:.2f} s"
    if result.get("cpu_seconds") is not None:
        text += f" ({result['cpu_seconds']:.1f} CPU s)"
    text += f", peak RSS {result['peak_rss_mib']:.0f} MiB"
    if "merge_rss_mib" in result:
        text += f" (merge +{result['merge_rss_mib']:.0f} MiB)"
    if result.get("passes"):
        text += "; " + ", ".join(f"{k} {v:.1f} s" for k, v in result["passes"].items())
    return text


def _comparison(fusionbench: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    if "skipped" in fusionbench[-1] or "skipped" in ours[-1]:
        reason = fusionbench[-1].get("skipped") or ours[-1].get("skipped")
        return {"skipped": reason}
    theirs = statistics.median(r["seconds"] for r in fusionbench)
    mine = statistics.median(r["seconds"] for r in ours)
    theirs_cpu = statistics.median(r.get("cpu_seconds", float("nan")) for r in fusionbench)
    mine_cpu = statistics.median(r.get("cpu_seconds", float("nan")) for r in ours)
    return {
        "fusionbench_seconds": theirs,
        "fusionbench_cpu_seconds": theirs_cpu,
        "fusionbench_peak_rss_mib": max(r["peak_rss_mib"] for r in fusionbench),
        "harness_seconds": mine,
        "harness_cpu_seconds": mine_cpu,
        "speedup": theirs / mine if mine > 0 else None,
        "cpu_speedup": theirs_cpu / mine_cpu if mine_cpu > 0 else None,
        "max_abs_diff": max(r["max_abs_diff"] for r in ours),
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(run: BenchRun, repeat: int) -> list[str]:
    """The rows as an aligned text table, the per-pass seconds beside the total."""
    from harness.merging.timing import PASSES

    header = ["method", "arch", "experts", "seconds", "CPU s", *PASSES]
    header += ["peak RSS MiB", "merge MiB", "CUDA MiB", "output params", "note"]
    body = []
    for row in run.rows:
        passes = row.passes or {}
        body.append(
            [
                row.method,
                row.arch,
                str(row.experts),
                _seconds(row.seconds),
                _seconds(row.cpu_seconds),
                *(_seconds(passes.get(name)) for name in PASSES),
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
        f"{run.arch}: {run.blocks} of its {run.total_blocks} blocks built (every tensor "
        f"shape included); one model = {run.model_mib:.0f} MiB on disk; seconds = median of "
        f"{repeat} run(s); CPU s = user + system seconds of every thread; "
        "read/statistics/merge/output = seconds per pass (the rest is "
        "Python between them); merge MiB = peak RSS minus RSS before the merge (fresh "
        "process per run); numba's once-per-process start (its threads and compiled "
        "kernels, ~0.3 s) runs before the clock, as imports do"
    )
    if run.comparison is not None:
        lines.append(_comparison_line(run.comparison))
    return lines


def _comparison_line(comparison: dict[str, Any]) -> str:
    if "skipped" in comparison:
        return f"FusionBench TIES comparison skipped: {comparison['skipped']}"
    cpu = ""
    if comparison.get("cpu_speedup") is not None:
        cpu = (
            f" (CPU time {comparison['fusionbench_cpu_seconds']:.2f} s against "
            f"{comparison['harness_cpu_seconds']:.2f} s: {comparison['cpu_speedup']:.1f}x)"
        )
    return (
        f"FusionBench TIES (in-memory experts): {comparison['fusionbench_seconds']:.2f} s, "
        f"peak RSS {comparison['fusionbench_peak_rss_mib']:.0f} MiB; harness ties "
        f"{comparison['harness_seconds']:.2f} s: {comparison['speedup']:.1f}x faster{cpu}; "
        f"max |difference| of the merged weights {comparison['max_abs_diff']:.3g}"
    )


def describe(run: BenchRun) -> dict[str, Any]:
    return {
        "arch": run.arch,
        "blocks": run.blocks,
        "total_blocks": run.total_blocks,
        "model_mib": run.model_mib,
        "rows": [asdict(row) for row in run.rows],
        "fusionbench_comparison": run.comparison,
    }


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
