"""``harness leaderboard build``: the static site from run records."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands.options import DEFAULT_RESULTS
from harness.errors import HarnessError


@click.group("leaderboard")
def leaderboard_group() -> None:
    """Build the static leaderboard site from run records."""


@leaderboard_group.command("build")
@click.option(
    "--results",
    "results_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RESULTS,
    show_default=True,
)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=Path("site"), show_default=True
)
def leaderboard_build(results_dir: Path, out_dir: Path) -> None:
    """Render the site (works from file://).

    \b
    Example:
      harness leaderboard build --results results --out site
    """
    from leaderboard.build import build_site

    if not results_dir.is_dir():
        raise HarnessError(
            f"results directory {results_dir} does not exist; run `harness eval` first "
            "or pass --results"
        )
    index = build_site(results_dir, out_dir)
    click.echo(f"site written: {index}")
