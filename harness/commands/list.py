"""``harness list``: registered methods and suites."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from harness.commands.options import print_table
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.registry import Entry


@click.command("list")
@click.argument("what", type=click.Choice(["methods", "tasks", "suites"]))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--family", default=None, help="Only methods of this family.")
def list_command(what: str, fmt: str, family: str | None) -> None:
    """List registered methods or task suites.

    \b
    Examples:
      harness list methods
      harness list methods --family merging --format json
      harness list tasks
    """
    from harness.registry import METHODS, SUITES

    if family is not None and what != "methods":
        raise HarnessError("--family applies to methods only; drop it or list methods")

    if what == "methods":
        entries = [e for e in METHODS.entries() if family is None or e.family == family]
        if fmt == "json":
            click.echo(json.dumps([e.describe() for e in entries], indent=2, default=str))
            return
        print_table(  # experts: "any" or exactly N; needs: what it reads from the suite
            ["name", "family", "experts", "needs", "defaults", "reference"],
            [
                (
                    e.name,
                    e.family,
                    e.experts or "any",
                    ",".join(e.needs) or "-",
                    _defaults(e),
                    e.reference or "-",
                )
                for e in entries
            ],
        )
        return
    suites = SUITES.entries()
    if fmt == "json":
        click.echo(json.dumps([describe_suite(e) for e in suites], indent=2, default=str))
        return
    print_table(
        ["name", "tasks", "description", "options", "reference"],
        [
            (e.name, len(suite_tasks(e)), e.description or "-", _defaults(e), e.reference or "-")
            for e in suites
        ],
    )


def _defaults(entry: Entry) -> str:
    return ", ".join(f"{k}={v}" for k, v in entry.defaults.items()) or "-"


def suite_tasks(entry: Entry) -> list[str]:
    """A suite's tasks as its class declares them (no build, no download)."""
    return list(getattr(entry.obj, "tasks", None) or [])


def describe_suite(entry: Entry) -> dict[str, Any]:
    """``Entry.describe`` plus what only a suite has: its tasks, their count, its metric."""
    tasks = suite_tasks(entry)
    return {
        **entry.describe(),
        "provides": sorted(getattr(entry.obj, "provides", ())),
        "tasks": tasks,
        "task_count": len(tasks),
        "metric": getattr(entry.obj, "metric", None),
    }
