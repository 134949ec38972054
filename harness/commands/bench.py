"""``harness bench eval|merge``: the harness measuring its own speed and memory."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.commands.options import mirror_option, parse_assignments, split_names
from harness.errors import HarnessError


@click.group("bench")
def bench_group() -> None:
    """Measure the harness's own speed."""


@bench_group.command("eval")
@click.option(
    "--arch",
    type=click.Choice(["vit-b-32", "vit-b-16", "vit-l-14"]),
    default="vit-b-32",
    show_default=True,
)
@click.option("--images", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--device", default="cuda", show_default=True, help="cuda, cuda:N or cpu.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="DataLoader workers of the plain pipeline (default: min(8, CPUs)).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
    help="Fast path precision (auto: bf16 on CUDA, fp32 on CPU).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=0),
    default=0,
    help="Fast path batch size (0: 1024 on CUDA, 256 on CPU).",
)
@click.option(
    "--tasks",
    "suite",
    default=None,
    help="A text suite (glue-gpt2): bench its scoring against the published recipe on "
    "its real data instead of the vision pipelines.",
)
@click.option("--only", default=None, help="With --tasks: comma-separated tasks of the suite.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="With --tasks: examples per task (default 1000 on CUDA, 8 on CPU; 0: all).",
)
@mirror_option("With --tasks: local mirror of hub artifacts (as for harness eval).")
@click.option(
    "--suite-set",
    "suite_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --tasks: a suite option, e.g. checkpoints=lora16 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_eval_command(
    arch: str,
    images: int,
    device: str,
    workers: int | None,
    dtype: str,
    batch_size: int,
    suite: str | None,
    only: str | None,
    limit: int | None,
    mirror: Path | None,
    suite_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Images/s of fast evaluation vs a plain DataLoader + PIL + fp32 batch-128 loop, or,
    with --tasks, examples/s of a text suite's scoring vs the published recipe (every
    example padded to 512, batch 8, fp32), with a check that both predict the same.

    \b
    Examples:
      harness bench eval --arch vit-b-32 --images 8192 --device cuda
      harness bench eval --tasks glue-gpt2 --device cuda --limit 0
      harness bench eval --tasks glue-gpt2 --device cpu --limit 8 --mirror DIR
      harness bench eval --tasks glue-flan-t5 --suite-set checkpoints=lora16 --device cuda
    """
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError("--device cuda but no CUDA device is visible; pass --device cpu")
    if suite is not None:
        settings = parse_assignments(suite_options, "--suite-set")
        _bench_text(suite, device, dtype, batch_size, only, limit, mirror, settings, as_json)
        return
    from harness.bench.eval import bench_eval, describe

    result = bench_eval(arch, images, device, workers=workers, dtype=dtype, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(describe(result), indent=2))
        return
    for line in result.lines():
        click.echo(line)


def _bench_text(
    suite: str,
    device: str,
    dtype: str,
    batch_size: int,
    only: str | None,
    limit: int | None,
    mirror: Path | None,
    settings: dict[str, object],
    as_json: bool,
) -> None:
    from harness.bench.text_eval import bench_text_eval, describe

    if dtype == "fp16":
        raise HarnessError("--dtype fp16 is not offered for text suites; use auto, bf16 or fp32")
    options: dict[str, object] = {**settings, "dtype": dtype}
    if batch_size:
        options["eval_batch_size"] = batch_size
    if limit is None:
        limit = 1000 if device.startswith("cuda") else 8
    result = bench_text_eval(
        suite,
        device=device,
        mirror=mirror,
        limit=limit or None,
        only=split_names(only, "--only") if only else None,
        options=options,
    )
    if as_json:
        click.echo(json.dumps(describe(result), indent=2))
        return
    for line in result.lines():
        click.echo(line)


@bench_group.command("merge")
@click.option("--methods", required=True, help="Comma-separated data-free method names.")
@click.option(
    "--arch",
    type=click.Choice(["vit-b-32", "vit-l-14", "llama-1b", "llama-8b"]),
    default="vit-b-32",
    show_default=True,
)
@click.option(
    "--blocks",
    type=click.IntRange(min=1),
    default=None,
    help="Transformer blocks to build (default: all; llama-8b: 1 of 32, to fit the disk). "
    "Embedding, head and every tensor shape are always included.",
)
@click.option("--experts", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs per method (each in a fresh process); the median time is shown.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the synthetic checkpoints (default: the temp directory).",
)
@click.option(
    "--compare-fusionbench",
    "fusionbench_python",
    default=None,
    metavar="PYTHON",
    help="The python of an environment with fusion-bench installed: also time "
    "FusionBench's TIES on the same checkpoints and compare it with ties.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_merge_command(
    methods: str,
    arch: str,
    blocks: int | None,
    experts: int,
    device: str,
    repeat: int,
    workdir: Path | None,
    fusionbench_python: str | None,
    as_json: bool,
) -> None:
    """Merge time, time per pass and peak memory on synthetic checkpoints of a real
    architecture.

    \b
    Examples:
      harness bench merge --methods weight_average,task_arithmetic,ties --arch vit-b-32
      harness bench merge --methods ties --arch vit-b-32 --experts 4 \\
          --compare-fusionbench /work/fbenv/bin/python
      harness bench merge --methods ties,tsv --arch llama-8b --blocks 1 --experts 8
    """
    import torch

    from harness.bench.merge import bench_merge, describe, format_table

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError("--device cuda but no CUDA device is visible; pass --device cpu")
    run = bench_merge(
        split_names(methods, "--methods"),
        arch,
        experts,
        device=device,
        repeat=repeat,
        workdir=workdir,
        blocks=blocks,
        compare_fusionbench=fusionbench_python,
        log=lambda line: click.echo(line, err=True),  # stderr: --json's stdout stays JSON
    )
    if as_json:
        click.echo(json.dumps(describe(run), indent=2))
        return
    for line in format_table(run, repeat):
        click.echo(line)


@bench_group.command("grid")
@click.option("--methods", required=True, help="Comma-separated method names.")
@click.option("--tasks", "suites", required=True, help="Comma-separated suite names.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option(
    "--executors",
    default="serial,ray,slurm-local",
    show_default=True,
    help="Comma-separated: serial, ray, slurm-local, slurm-debug; the first is the baseline.",
)
@click.option(
    "--select",
    type=click.Choice(["grid", "defaults"]),
    default="defaults",
    show_default=True,
    help="Hyperparameter selection of every cell.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells at once on the engines (1: their overhead alone).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where each executor's results go (default: a fresh temporary directory).",
)
@mirror_option()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_grid_command(
    methods: str,
    suites: str,
    seeds: str,
    executors: str,
    select: str,
    max_parallel: int,
    workdir: Path | None,
    mirror: Path | None,
    as_json: bool,
) -> None:
    """Overhead per cell of running a grid on Ray or submitit, against serial.

    \b
    Example:
      harness bench grid --methods pretrained,weight_average,task_arithmetic,ties \\
          --tasks mini8 --executors serial,ray,slurm-local
    """
    import tempfile

    from harness import progress
    from harness.bench.grid import bench_grid, describe, format_table
    from harness.run.runner import RunSpec

    progress.set_enabled(False)
    try:
        seed_values = [int(seed) for seed in split_names(seeds, "--seeds")]
    except ValueError:
        raise HarnessError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    with tempfile.TemporaryDirectory(prefix="harness-bench-grid-") as scratch:
        root = Path(workdir or scratch).resolve()
        specs = [
            RunSpec(method=m, suite=s, seed=seed, select=select, mirror=mirror, results_dir=root)
            for s in split_names(suites, "--tasks")
            for m in split_names(methods, "--methods")
            for seed in seed_values
        ]
        for spec in specs:
            spec.entries()
        timings = bench_grid(
            specs,
            split_names(executors, "--executors"),
            root,
            max_parallel=max_parallel,
            log=lambda line: click.echo(line, err=True),  # stderr: --json's stdout stays JSON
        )
    if as_json:
        click.echo(json.dumps(describe(timings), indent=2))
        return
    for line in format_table(timings):
        click.echo(line)
