"""The ``harness`` command line.

Errors the user can fix print one line (``error: ...``) and exit with status 2; pass
``--debug`` (or set HARNESS_DEBUG=1) to see the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

import harness
from harness import progress
from harness.errors import HarnessError

DEFAULT_RESULTS = Path("results")


def _parse_assignments(values: tuple[str, ...], flag: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"{flag} expects key=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def _split_names(value: str, flag: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise HarnessError(f"{flag} needs at least one name")
    return names


def _common_run_options(fn: Any) -> Any:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(harness.__version__, prog_name="harness")
@click.option("--debug", is_flag=True, envvar="HARNESS_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark merging and transfer methods on model suites.

    \b
    Quick start (offline, about 4 minutes on 2 CPU cores the first time):
      harness eval --method ties --tasks mini8
      harness grid --methods pretrained,individual,weight_average,task_arithmetic,ties --tasks mini8
      harness leaderboard build && open site/index.html
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command("list")
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
    _print_table(header, rows)


def _print_table(header: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [header] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * width for width in widths))


def _spec(method: str, suite: str, seed: int, **options: Any) -> Any:
    from harness.runner import RunSpec

    return RunSpec(
        method=method,
        suite=suite,
        overrides=_parse_assignments(options["overrides"], "--set"),
        suite_options=_parse_assignments(options["suite_options"], "--suite-set"),
        only=_split_names(options["only"], "--only") if options.get("only") else None,
        select=options["select"],
        seed=seed,
        device=options["device"],
        results_dir=options["results_dir"],
        mirror=options["mirror"],
        progress=not options["quiet"],
        validation_limit=options["validation_limit"],
    )


def _print_record(record: dict[str, Any], path: Path) -> None:
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
    _print_table(["task", metric, "individual", "normalized"], rows)
    timings = record["timings"]
    click.echo(
        f"load {timings['load_s']:.1f}s · select {timings.get('select_s', 0):.1f}s · "
        f"method {timings['method_s']:.1f}s · evaluate {timings['evaluate_s']:.1f}s"
    )
    click.echo(f"record: {path}")


@cli.command("eval")
@click.option("--method", required=True, help="A registered method (harness list methods).")
@click.option("--tasks", "suite", required=True, help="A task suite (harness list tasks).")
@click.option("--only", default=None, help="Comma-separated subset of the suite's tasks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace this run's record if it exists.")
@_common_run_options
def eval_command(method: str, suite: str, seed: int, overwrite: bool, **options: Any) -> None:
    """Run one method on one suite, record the result, print a per-task table.

    \b
    Examples:
      harness eval --method ties --tasks mini8
      harness eval --method task_arithmetic --tasks vit8 --set scaling=0.3 --device cuda
      harness eval --method ties --tasks vit8 --suite-set arch=vit-l-14 --mirror /data/mirror
    """
    from harness.runner import run

    progress.set_enabled(not options["quiet"])
    record, path = run(_spec(method, suite, seed, **options), overwrite=overwrite)
    _print_record(record, path)


@cli.command("grid")
@click.option("--methods", required=True, help="Comma-separated method names.")
@click.option("--tasks", "suites", required=True, help="Comma-separated suite names.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--only", default=None, help="Comma-separated subset of each suite's tasks.")
@_common_run_options
def grid_command(methods: str, suites: str, seeds: str, **options: Any) -> None:
    """Run the methods × suites (× seeds) grid; cells already recorded are skipped.

    Interrupt it at any time: finished cells stay recorded, and the same command resumes.

    \b
    Example:
      harness grid --methods pretrained,individual,weight_average,task_arithmetic,ties \\
          --tasks mini8
    """
    from harness.runner import run

    progress.set_enabled(not options["quiet"])
    try:
        seed_values = [int(seed) for seed in _split_names(seeds, "--seeds")]
    except ValueError:
        raise HarnessError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    specs = [
        _spec(method, suite, seed, **options)
        for suite in _split_names(suites, "--tasks")
        for method in _split_names(methods, "--methods")
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
        _print_record(record, path)
        done += 1
    click.echo(f"\ngrid finished: {done} run, {skipped} already recorded")


@cli.group("leaderboard")
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


@cli.group("convert")
def convert_group() -> None:
    """Convert checkpoints to safetensors (the format the expert pool streams)."""


@convert_group.command("checkpoint")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Unpickle SOURCE if it is not a plain state dict (runs code from the file: "
    "only for files you trust, such as the task-vectors release).",
)
def convert_checkpoint_command(source: Path, target: Path, allow_pickle: bool) -> None:
    """Write TARGET/model.safetensors from a torch file SOURCE (.pt/.bin).

    \b
    Example (the original task-vectors release, into a mirror):
      harness convert checkpoint checkpoints/ViT-B-32/SUN397/finetuned.pt \\
          mirror/models/task-vectors/ViT-B-32_sun397 --allow-pickle
    """
    from harness.convert import convert_checkpoint

    weights = convert_checkpoint(source, target, allow_pickle=allow_pickle)
    click.echo(f"written: {weights}")


@cli.group("bench")
def bench_group() -> None:
    """Measure the harness's own speed."""


@bench_group.command("eval")
@click.option(
    "--arch",
    type=click.Choice(["vit-b-32", "vit-b-16", "vit-l-14"]),
    default="vit-b-32",
    show_default=True,
)
@click.option("--images", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--device", default="cuda", show_default=True, help="cuda, cuda:N or cpu.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="DataLoader workers of the plain pipeline (default: min(8, CPUs)).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
    help="Fast path precision (auto: bf16 on CUDA, fp32 on CPU).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=0),
    default=0,
    help="Fast path batch size (0: 1024 on CUDA, 256 on CPU).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_eval_command(
    arch: str,
    images: int,
    device: str,
    workers: int | None,
    dtype: str,
    batch_size: int,
    as_json: bool,
) -> None:
    """Images/s of fast evaluation vs a plain DataLoader + PIL + fp32 batch-128 loop.

    \b
    Example:
      harness bench eval --arch vit-b-32 --images 8192 --device cuda
    """
    import torch

    from harness.bench_eval import bench_eval, describe

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError("--device cuda but no CUDA device is visible; pass --device cpu")
    result = bench_eval(arch, images, device, workers=workers, dtype=dtype, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(describe(result), indent=2))
        return
    for line in result.lines():
        click.echo(line)


@bench_group.command("merge")
@click.option("--methods", required=True, help="Comma-separated data-free method names.")
@click.option(
    "--arch",
    type=click.Choice(["vit-b-32", "vit-l-14", "llama-1b"]),
    default="vit-b-32",
    show_default=True,
)
@click.option("--experts", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs per method (each in a fresh process); the median time is shown.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the synthetic checkpoints (default: the temp directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_merge_command(
    methods: str,
    arch: str,
    experts: int,
    device: str,
    repeat: int,
    workdir: Path | None,
    as_json: bool,
) -> None:
    """Merge time and peak memory on synthetic checkpoints of a real architecture.

    \b
    Example:
      harness bench merge --methods weight_average,task_arithmetic,ties --arch vit-b-32
    """
    import torch

    from harness.bench_merge import bench_merge, describe, format_table

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError("--device cuda but no CUDA device is visible; pass --device cpu")
    rows, model_mib = bench_merge(
        _split_names(methods, "--methods"),
        arch,
        experts,
        device=device,
        repeat=repeat,
        workdir=workdir,
        log=None if as_json else lambda line: click.echo(line, err=True),
    )
    if as_json:
        click.echo(json.dumps(describe(rows, model_mib), indent=2))
        return
    for line in format_table(rows, model_mib, repeat):
        click.echo(line)


@cli.command("validate")
@click.argument("results_dir", type=click.Path(path_type=Path))
def validate_command(results_dir: Path) -> None:
    """Check every record under RESULTS_DIR against the schema (exit 1 on problems).

    \b
    Example:
      harness validate results
    """
    from harness.records import record_files, validation_problems_in

    if not results_dir.exists():
        raise HarnessError(f"{results_dir} does not exist")
    files = list(record_files(results_dir)) if results_dir.is_dir() else [results_dir]
    problems = validation_problems_in(files)
    for problem in problems:
        click.echo(problem)
    click.echo(f"{len(files)} record file(s) checked, {len(problems)} problem(s)")
    if problems:
        sys.exit(1)


def main() -> None:
    debug = os.environ.get("HARNESS_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:3]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted; records written so far are intact", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except HarnessError as error:
        if debug:
            raise
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; records written so far are intact", err=True)
        sys.exit(130)
