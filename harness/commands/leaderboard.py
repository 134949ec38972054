"""``harness leaderboard build``: the static site from run records."""

from __future__ import annotations

import os
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
@click.option(
    "--judges",
    "judges_dir",
    type=click.Path(path_type=Path),
    default=Path("judge-results"),
    show_default=True,
    help="Judge meta-evaluation results (harness judge meta); skipped when absent.",
)
@click.option(
    "--mergeability",
    "mergeability_dir",
    type=click.Path(path_type=Path),
    default=Path("mergeability-results"),
    show_default=True,
    help="Merge-ability results (harness transfer mergeability); skipped when absent.",
)
def leaderboard_build(
    results_dir: Path, out_dir: Path, judges_dir: Path, mergeability_dir: Path
) -> None:
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
    check_out_dir(out_dir)
    try:
        index = build_site(
            results_dir, out_dir, judges_dir=judges_dir, mergeability_dir=mergeability_dir
        )
    except OSError as error:  # e.g. a disk that filled up, a folder that vanished
        where = error.filename or out_dir
        raise HarnessError(
            f"cannot write the site to --out {out_dir} ({where}: {error.strerror}); "
            "pass a directory you can write to"
        ) from None
    click.echo(f"site written: {index}")


def check_out_dir(out_dir: Path) -> None:
    """Refuse an --out the site could not be written to, before any work is done.

    The site is renamed into place beside ``out_dir``, so its nearest existing ancestor
    must be a writable directory; nothing is created here.
    """
    ancestor = out_dir.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor != out_dir.absolute() and not ancestor.is_dir():
        raise HarnessError(
            f"--out {out_dir} lies under {ancestor}, which is a file; "
            "pass a directory path for the site"
        )
    parent = out_dir.absolute().parent if ancestor == out_dir.absolute() else ancestor
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HarnessError(
            f"--out {out_dir}: {parent} is not writable; pass a directory you can write to"
        )
