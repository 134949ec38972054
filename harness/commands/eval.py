"""``harness eval``: one method on one suite, recorded."""

from __future__ import annotations

from typing import Any

import click

from harness import progress
from harness.commands.options import print_record, run_options, run_spec


@click.command("eval")
@click.option("--method", required=True, help="A registered method (harness list methods).")
@click.option("--tasks", "suite", required=True, help="A task suite (harness list tasks).")
@click.option("--only", default=None, help="Comma-separated subset of the suite's tasks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace this run's record if it exists.")
@run_options
def eval_command(method: str, suite: str, seed: int, overwrite: bool, **options: Any) -> None:
    """Run one method on one suite, record the result, print a per-task table.

    \b
    Examples:
      harness eval --method ties --tasks mini8
      harness eval --method task_arithmetic --tasks vit8 --set scaling=0.3 --device cuda
      harness eval --method ties --tasks vit8 --suite-set arch=vit-l-14 --mirror /data/mirror
    """
    from harness.run.runner import run

    progress.set_enabled(not options["quiet"])
    record, path = run(run_spec(method, suite, seed, **options), overwrite=overwrite)
    print_record(record, path)
