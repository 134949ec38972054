"""``harness list``: registered methods and suites."""

from __future__ import annotations

import json

import click

from harness.commands.options import print_table


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

    registry = METHODS if what == "methods" else SUITES
    entries = [e for e in registry.entries() if family is None or e.family == family]
    if fmt == "json":
        click.echo(json.dumps([entry.describe() for entry in entries], indent=2, default=str))
        return
    rows = [
        (
            entry.name,
            entry.family,
            ", ".join(f"{k}={v}" for k, v in entry.defaults.items()) or "-",
            entry.reference or "-",
        )
        for entry in entries
    ]
    header = ["name", "family", "defaults", "reference"]
    if what == "methods":  # how many experts a method needs: "any" or exactly N
        header.insert(2, "experts")
        rows = [(*row[:2], entry.experts or "any", *row[2:]) for row, entry in zip(rows, entries)]
    print_table(header, rows)
