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
@click.option(
    "--overwrite", is_flag=True, help="Run again and replace this run's record if it exists."
)
@click.option(
    "--judge",
    default=None,
    help="For judged suites (crosseval): local:<hub id>, openai:<model>?base_url=...&"
    "key_env=..., or replay:<file>; the same as --suite-set judge=...",
)
@run_options
def eval_command(
    method: str, suite: str, seed: int, overwrite: bool, judge: str | None, **options: Any
) -> None:
    """Run one method on one suite, record the result, print a per-task table.

    A run that is already recorded is not run again: its record is shown.

    \b
    Examples:
      harness eval --method ties --tasks mini8
      harness eval --method task_arithmetic --tasks vit8 --set scaling=0.3 --device cuda
      harness eval --method ties --tasks vit8 --suite-set arch=vit-l-14 --mirror /data/mirror
      harness eval --method ties --tasks crosseval --judge openai:gpt-4o --select defaults
      harness eval --method dare_ties --tasks llm-math --checkpoints mergebench-llama3.1-8b \\
          --backend vllm --device cuda
    """
    from harness.run.runner import run_cell

    progress.set_enabled(not options["quiet"])
    outcome = run_cell(
        run_spec(method, suite, seed, judge=judge, **options),
        overwrite=overwrite,
        log=lambda line: click.echo(line, err=True),
    )
    if not outcome.ran:
        click.echo(f"already recorded on {outcome.record['created']}; nothing was run")
    print_record(outcome.record, outcome.path)
    if not outcome.ran:
        click.echo(
            "to run it again, add --overwrite (replaces this record), "
            "or pass --results DIR to record elsewhere"
        )
