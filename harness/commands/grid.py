"""``harness grid``: the methods × suites × seeds grid, resumable."""

from __future__ import annotations

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
@run_options
def grid_command(methods: str, suites: str, seeds: str, **options: Any) -> None:
    """Run the methods × suites (× seeds) grid; cells already recorded are skipped.

    Interrupt it at any time: finished cells stay recorded, and the same command resumes.

    \b
    Example:
      harness grid --methods pretrained,individual,weight_average,task_arithmetic,ties \\
          --tasks mini8
    """
    from harness.run.runner import run

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
    for index, spec in enumerate(specs, 1):
        label = f"[{index}/{len(specs)}] {spec.method} on {spec.suite} (seed {spec.seed})"
        if spec.path().exists():
            click.echo(f"{label}: already recorded, skipped")
            skipped += 1
            continue
        click.echo(f"{label}: running")
        record, path = run(spec)
        print_record(record, path)
        done += 1
    click.echo(f"\ngrid finished: {done} run, {skipped} already recorded")
