"""``harness grid``: the methods × suites × seeds grid, resumable, here or on Ray / Slurm."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness import progress
from harness.commands.options import print_record, run_options, run_spec, split_names
from harness.errors import HarnessError


@click.command("grid")
@click.option("--methods", required=True, help="Comma-separated method names.")
@click.option("--tasks", "suites", required=True, help="Comma-separated suite names.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--only", default=None, help="Comma-separated subset of each suite's tasks.")
@click.option(
    "--executor",
    type=click.Choice(["serial", "ray", "slurm"]),
    default="serial",
    show_default=True,
    help="Where cells run: here one after another, as Ray tasks, or as a Slurm job array.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run again the cells that failed before (those with a .failed file); a plain "
    "rerun skips them.",
)
@click.option(
    "--address",
    default=None,
    help="Ray: the cluster to use (auto: the one this node belongs to; ray://HEAD:10001). "
    "Default: start Ray on this machine.",
)
@click.option(
    "--gpus-per-cell",
    type=click.FloatRange(min=0),
    default=None,
    help="GPUs each cell asks for; fractions pack cells on one GPU (Ray). "
    "Default: Ray 1 if the cluster has GPUs else 0; Slurm 0.",
)
@click.option("--cpus-per-cell", type=click.IntRange(min=1), default=None, help="CPUs per cell.")
@click.option("--mem", "mem_gb", type=click.FloatRange(min=0.1), default=None, help="GB per cell.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option(
    "--time",
    "time_limit",
    default=None,
    help="Slurm time limit per cell: minutes or H:MM:SS (default 180 minutes).",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many cells at once (Slurm: the array's parallelism).",
)
@click.option(
    "--slurm-cluster",
    type=click.Choice(["slurm", "local", "debug"]),
    default="slurm",
    show_default=True,
    help="submitit's executor: slurm, or local processes / this process to try a grid.",
)
@click.option(
    "--slurm-folder",
    type=click.Path(path_type=Path),
    default=None,
    help="Slurm job logs and submitit files (default <results>/.submitit).",
)
@run_options
def grid_command(
    methods: str,
    suites: str,
    seeds: str,
    executor: str,
    retry_failed: bool,
    address: str | None,
    gpus_per_cell: float | None,
    cpus_per_cell: int | None,
    mem_gb: float | None,
    partition: str | None,
    time_limit: str | None,
    max_parallel: int | None,
    slurm_cluster: str,
    slurm_folder: Path | None,
    **options: Any,
) -> None:
    """Run the methods × suites (× seeds) grid; cells already recorded are skipped.

    Interrupt it at any time: finished cells stay recorded, and the same command resumes.
    Several grids may share one --results directory: a cell another process is running
    is locked and left to it. A corrupt record is moved aside and its cell run again.
    A cell that fails leaves <run_id>.json.failed beside its record (reason, traceback,
    command) and the grid goes on; a rerun skips it unless --retry-failed. Exit status 1
    when a cell failed or was lost.

    \b
    Examples:
      harness grid --methods pretrained,individual,weight_average,task_arithmetic,ties \\
          --tasks mini8
      harness grid --methods ties,tsv --tasks vit8 --executor ray --gpus-per-cell 0.25
      harness grid --methods ties,tsv --tasks vit8 --executor ray --address auto
      harness grid --methods ties,tsv --tasks vit8,vit14 --seeds 0,1,2 --executor slurm \\
          --partition gpu --time 2:00:00 --gpus-per-cell 1 --cpus-per-cell 8 --mem 32
    """
    from harness.grid.driver import run_grid
    from harness.grid.executors import Resources, make_executor
    from harness.grid.summary import print_summary

    progress.set_enabled(not options["quiet"])
    try:
        seed_values = [int(seed) for seed in split_names(seeds, "--seeds")]
    except ValueError:
        raise HarnessError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    engine = make_executor(
        executor,
        resources=Resources(gpus=gpus_per_cell, cpus=cpus_per_cell, mem_gb=mem_gb),
        address=address,
        partition=partition,
        time=time_limit,
        slurm_cluster=slurm_cluster,
        slurm_folder=slurm_folder or Path(options["results_dir"]) / ".submitit",
        max_parallel=max_parallel,
    )
    specs = [
        run_spec(method, suite, seed, **options)
        for suite in split_names(suites, "--tasks")
        for method in split_names(methods, "--methods")
        for seed in seed_values
    ]
    for spec in specs:  # check every name and value before running anything
        spec.entries()
    rows = run_grid(
        specs,
        engine,
        retry_failed=retry_failed,
        show_records=print_record if executor == "serial" else None,
        bars=not options["quiet"],
    )
    print_summary(rows)
    if any(row.status in ("failed", "failed_before", "lost") for row in rows):
        sys.exit(1)
