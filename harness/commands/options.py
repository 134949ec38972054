"""What several commands share: run options, name lists, printed tables and records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.errors import HarnessError

DEFAULT_RESULTS = Path("results")


def parse_assignments(values: tuple[str, ...], flag: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"{flag} expects key=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def split_names(value: str, flag: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise HarnessError(f"{flag} needs at least one name")
    return names


def mirror_option(help: str = "Local mirror of hub artifacts; env HARNESS_MIRROR.") -> Any:
    """``--mirror DIR`` (env HARNESS_MIRROR), as every command that resolves hub artifacts
    takes it."""
    return click.option(
        "--mirror",
        type=click.Path(path_type=Path),
        default=None,
        envvar="HARNESS_MIRROR",
        help=help,
    )


def run_options(fn: Any) -> Any:
    options = [
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Fix a method hyperparameter (repeatable); others are selected "
            "on the validation split.",
        ),
        click.option(
            "--suite-set",
            "suite_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="Set a suite option, e.g. arch=vit-l-14 (repeatable).",
        ),
        click.option(
            "--checkpoints",
            default=None,
            help="The suite's set of base and expert checkpoints (each suite's default is "
            "in harness list tasks); the same as --suite-set checkpoints=...",
        ),
        click.option(
            "--backend",
            type=click.Choice(["hf", "vllm"]),
            default=None,
            help="LLM suites: score the merge in memory with transformers (hf, the "
            "default) or with vLLM from a temporary copy; the same as --suite-set backend=...",
        ),
        click.option(
            "--select",
            "select",
            type=click.Choice(["grid", "defaults"]),
            default="grid",
            show_default=True,
            help="grid: pick free hyperparameters on validation; defaults: "
            "use the paper's defaults.",
        ),
        click.option(
            "--validation-limit",
            type=click.IntRange(min=1),
            default=None,
            help="Score at most N validation examples per task while selecting.",
        ),
        click.option(
            "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
        ),
        click.option(
            "--results",
            "results_dir",
            type=click.Path(path_type=Path),
            default=DEFAULT_RESULTS,
            show_default=True,
            help="Directory of run records.",
        ),
        click.option(
            "--mirror",
            type=click.Path(path_type=Path),
            default=None,
            envvar="HARNESS_MIRROR",
            help="Local mirror of hub artifacts (DIR/models/<org>/<name>, "
            "DIR/datasets/<org>/<name>); env HARNESS_MIRROR.",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def print_table(header: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [header] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * width for width in widths))


SUITE_SHORTCUTS = ("checkpoints", "backend", "judge")
"""Suite options with a flag of their own (``--checkpoints X`` is ``--suite-set
checkpoints=X``)."""


def suite_options(options: dict[str, Any]) -> dict[str, str]:
    """``--suite-set`` assignments with the shortcut flags folded in; a key given both
    ways with two values is an error rather than a silent pick."""
    assigned = parse_assignments(options["suite_options"], "--suite-set")
    for key in SUITE_SHORTCUTS:
        value = options.get(key)
        if value is None:
            continue
        if key in assigned and assigned[key] != value:
            raise HarnessError(
                f"--{key} {value} and --suite-set {key}={assigned[key]} disagree; give one"
            )
        assigned[key] = value
    return assigned


def run_spec(method: str, suite: str, seed: int, **options: Any) -> Any:
    from harness.run.runner import RunSpec

    return RunSpec(
        method=method,
        suite=suite,
        overrides=parse_assignments(options["overrides"], "--set"),
        suite_options=suite_options(options),
        only=split_names(options["only"], "--only") if options.get("only") else None,
        select=options["select"],
        seed=seed,
        device=options["device"],
        results_dir=options["results_dir"],
        mirror=options["mirror"],
        progress=not options["quiet"],
        validation_limit=options["validation_limit"],
    )


def print_record(record: dict[str, Any], path: Path) -> None:
    rows = []
    for task, entry in record["tasks"].items():
        normalized = entry["normalized"]
        rows.append(
            (
                task,
                f"{entry['metric']:.2f}",
                f"{entry['individual']:.2f}" if entry["individual"] is not None else "-",
                f"{normalized:.1f}" if normalized is not None else "-",
            )
        )
    normalized_average = record["normalized_average"]
    rows.append(
        (
            "average",
            f"{record['average']:.2f}",
            "",
            f"{normalized_average:.1f}" if normalized_average is not None else "-",
        )
    )
    metric = record["suite"]["metric"]
    click.echo(
        f"\n{record['method']['name']} on {record['suite']['name']} "
        f"({record['suite']['checkpoint_set']}), seed {record['seed']}"
    )
    hyperparameters = ", ".join(f"{k}={v}" for k, v in record["hyperparameters"].items())
    click.echo(
        f"hyperparameters: {hyperparameters or '-'} (chosen by {record['selection']['strategy']})"
    )
    print_table(["task", metric, "individual", "normalized"], rows)
    timings = record["timings"]
    click.echo(
        f"load {timings['load_s']:.1f}s · select {timings.get('select_s', 0):.1f}s · "
        f"method {timings['method_s']:.1f}s · evaluate {timings['evaluate_s']:.1f}s"
    )
    click.echo(f"record: {path}")
