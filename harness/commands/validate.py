"""``harness validate``: records checked against the schema."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.errors import HarnessError


@click.command("validate")
@click.argument("results_dir", type=click.Path(path_type=Path))
def validate_command(results_dir: Path) -> None:
    """Check every record under RESULTS_DIR against the schema.

    Exits 1 on problems, and when RESULTS_DIR holds no records at all.

    \b
    Example:
      harness validate results
    """
    from harness.run.records import record_files, validation_problems_in

    if not results_dir.exists():
        raise HarnessError(f"{results_dir} does not exist")
    files = list(record_files(results_dir)) if results_dir.is_dir() else [results_dir]
    if not files:  # most likely a wrong path: say so instead of "0 problems"
        click.echo(
            f"no records under {results_dir} (records are <results>/<suite>/<method>/"
            "<run_id>.json; `harness eval` writes to ./results): check the path",
            err=True,
        )
        sys.exit(1)
    problems = validation_problems_in(files)
    for problem in problems:
        click.echo(problem)
    click.echo(f"{len(files)} record file(s) checked, {len(problems)} problem(s)")
    if problems:
        sys.exit(1)
