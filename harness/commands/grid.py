"""``harness grid``: the methods × suites × seeds grid, resumable."""

from __future__ import annotations

from typing import Any

import click

from harness import progress
from harness.commands.options import print_record, run_options, run_spec, split_names
from harness.errors import CellLockedError, HarnessError


@click.command("grid")
@click.option("--methods", required=True, help="Comma-separated method names.")
@click.option("--tasks", "suites", required=True, help="Comma-separated suite names.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--only", default=None, help="Comma-separated subset of each suite's tasks.")
@run_options
def grid_command(methods: str, suites: str, seeds: str, **options: Any) -> None:
    """Run the methods × suites (× seeds) grid; cells already recorded are skipped.

    Interrupt it at any time: finished cells stay recorded, and the same command resumes.
    Several grids may share one --results directory: a cell another process is running
    is locked and left to it. A corrupt record is moved aside and its cell run again.

    \b
    Example:
      harness grid --methods pretrained,individual,weight_average,task_arithmetic,ties \\
          --tasks mini8
    """
    from harness.run.runner import run_cell

    progress.set_enabled(not options["quiet"])
    try:
        seed_values = [int(seed) for seed in split_names(seeds, "--seeds")]
    except ValueError:
        raise HarnessError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    specs = [
        run_spec(method, suite, seed, **options)
        for suite in split_names(suites, "--tasks")
        for method in split_names(methods, "--methods")
        for seed in seed_values
    ]
    for spec in specs:  # check every name and value before running anything
        spec.entries()
    done = skipped = 0
    left: list[str] = []  # cells another process is running
    for index, spec in enumerate(specs, 1):
        label = f"[{index}/{len(specs)}] {spec.method} on {spec.suite} (seed {spec.seed})"
        try:
            outcome = run_cell(
                spec,
                log=lambda line, label=label: click.echo(f"{label}: {line}"),
                on_start=lambda label=label: click.echo(f"{label}: running"),
            )
        except CellLockedError as error:
            click.echo(f"{label}: being run by {error.holder}, skipped")
            left.append(f"  {spec.method} on {spec.suite} (seed {spec.seed}): {error.holder}")
            continue
        if not outcome.ran:
            click.echo(f"{label}: already recorded, skipped")
            skipped += 1
            continue
        print_record(outcome.record, outcome.path)
        done += 1
    summary = f"\ngrid finished: {done} run, {skipped} already recorded"
    if left:
        summary += f", {len(left)} left to other processes (rerun this grid once they finish):"
    click.echo("\n".join([summary, *left]))
