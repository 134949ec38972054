"""``harness transfer``: transferability work that is not one estimator run.

``mergeability`` scores pre-merge signals against the merges a results directory holds;
``finetune`` computes a zoo suite's fine-tuned ground truth.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness import progress
from harness.commands.options import DEFAULT_RESULTS, mirror_option, print_table
from harness.errors import HarnessError

DEFAULT_MERGEABILITY = Path("mergeability-results")


@click.group("transfer")
def transfer_group() -> None:
    """Transferability: merge-ability prediction and zoo ground truth."""


@transfer_group.command("mergeability")
@click.option(
    "--results",
    "results_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RESULTS,
    show_default=True,
    help="Run records; every merging-method record is one merge.",
)
@click.option("--tasks", "suite", default=None, help="Only this suite's records (e.g. mini8).")
@click.option(
    "--estimator",
    default="logme",
    show_default=True,
    help="Feature-based transferability estimator applied to each merged model; "
    "'none' for the data-free pool signals only (no merge is rebuilt).",
)
@click.option(
    "--examples",
    type=click.IntRange(min=2),
    default=500,
    show_default=True,
    help="Training examples per task the estimator sees.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_MERGEABILITY,
    show_default=True,
    help="Directory for <suite>.json (the leaderboard's --mergeability).",
)
@click.option("--device", default="cpu", show_default=True, help="Where merges are rebuilt.")
@mirror_option("Local mirror of hub artifacts (for hub suites); env HARNESS_MIRROR.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def mergeability_command(
    results_dir: Path,
    suite: str | None,
    estimator: str,
    examples: int,
    out: Path,
    device: str,
    mirror: Path | None,
    quiet: bool,
) -> None:
    """Score pre-merge signals by weighted Kendall τ against the accuracy merges reached.

    Each merge record of a suite is a point (its normalised average accuracy) and so is
    each of its tasks (the merged model's normalised accuracy there). Signals: task-vector
    cosine, TIES sign-conflict rate and task-vector norm spread (from the suite's expert
    pool, data-free), and --estimator on the merged model's features on each task's
    training inputs (the merge is rebuilt from the record and its features cached).

    \b
    Examples:
      harness transfer mergeability --results results --tasks mini8
      harness transfer mergeability --results results --estimator none
      harness transfer mergeability --results results --estimator sfda --examples 1000
    """
    from harness.registry import SUITES
    from harness.run.provenance import resolve_device
    from harness.run.records import load_records
    from harness.transferability import mergeability as mb

    progress.set_enabled(not quiet)
    if not results_dir.is_dir():
        raise HarnessError(
            f"results directory {results_dir} does not exist; run `harness grid` with "
            "merging methods first or pass --results"
        )
    if suite is not None:
        SUITES.get(suite)  # an unknown name is one line listing the suites
    chosen = None if estimator.lower() == "none" else estimator
    if chosen is not None:
        mb.estimator_score(chosen)
    loaded = load_records(results_dir)
    grouped = mb.merge_records(loaded.records, suite)
    if not grouped:
        where = f" of suite {suite!r}" if suite else ""
        raise HarnessError(
            f"{results_dir} holds no merge records{where} ({len(loaded.records)} records, "
            "none of a merging method); run e.g. `harness grid --methods "
            "task_arithmetic,ties --tasks mini8 --select defaults` first"
        )
    written = 0
    for name, records in sorted(grouped.items()):
        result = mb.suite_mergeability(
            name,
            records,
            estimator=chosen,
            examples=examples,
            device=resolve_device(device),
            mirror=mirror,
            progress=not quiet,
        )
        if not result.points["record"]:
            click.echo(
                f"\n{name}: all {len(result.skipped)} merge records were made on another "
                f"build of the suite, not {result.checkpoint_set}; rerun them (harness grid "
                f"--tasks {name}) to score them here"
            )
            continue
        path = mb.write_result(result, out)
        written += 1
        click.echo(
            f"\n{name}: {len(result.points['record'])} merge records"
            + (f" ({len(result.skipped)} skipped: another build)" if result.skipped else "")
        )
        rows = []
        for signal in result.signals:
            row: list[str] = [signal, "+" if mb.ORIENTATION.get(signal, 1) > 0 else "−"]
            for level in mb.LEVELS:
                score = result.scores[level][signal]
                if score["constant"]:
                    row += ["const", "const", str(score["n"])]
                else:
                    row += [
                        mb.format_number(score["tau_w"]),
                        mb.format_number(score["pearson"]),
                        str(score["n"]),
                    ]
            rows.append(tuple(row))
        header = ["signal", "sign", "τ_w record", "r record", "n", "τ_w task", "r task", "n"]
        print_table(header, rows)
        click.echo(f"written: {path}")
    if not written:
        raise HarnessError(
            f"none of the merge records under {results_dir} was made on the suites as built "
            "now (see above); rerun the merges, then this command"
        )


@transfer_group.command("finetune")
@click.option("--tasks", "suite", required=True, help="The zoo suite, e.g. zoo-mini8.")
@click.option("--only", default=None, help="Comma-separated subset of its targets.")
@click.option(
    "--suite-set",
    "suite_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Suite option (repeatable), as for harness eval.",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, auto.")
@mirror_option("Local mirror of hub artifacts; env HARNESS_MIRROR.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def finetune_command(
    suite: str,
    only: str | None,
    suite_options: tuple[str, ...],
    device: str,
    mirror: Path | None,
    quiet: bool,
) -> None:
    """Compute a zoo's ground truth: fine-tune every (source, target) pair.

    Each pair is fine-tuned end to end with a new linear head over the suite's
    learning-rate × weight-decay grid; the grid point best on validation is scored on
    test. Pairs are logged one by one in the harness cache: interrupt at any time and the
    same command resumes; a finished pair is never trained again, and `harness eval`
    on the suite reads the same log. A suite that builds its ground truth (zoo-mini8)
    runs the same code in its build.

    \b
    Examples:
      harness transfer finetune --tasks zoo-mini8
      harness transfer finetune --tasks zoo-mini8 --only mnist,shapes
      harness transfer finetune --tasks zoo-clip --mirror /data/mirror --device cuda
      harness transfer finetune --tasks zoo-clip --suite-set set=vit20 --suite-set steps=500
    """
    from harness.cache import cache_dir
    from harness.commands.options import parse_assignments, split_names
    from harness.keyed_log import KeyedLog
    from harness.registry import SUITES
    from harness.run.provenance import resolve_device
    from harness.suite import SuiteContext
    from harness.transferability.finetune import FinetunableZoo, finetune_pairs
    from harness.transferability.zoo import ZooSuite

    progress.set_enabled(not quiet)
    entry = SUITES.get(suite)
    if not issubclass(entry.obj, ZooSuite):
        raise HarnessError(
            f"{suite!r} is not a model zoo; fine-tuning ground truth is for zoo suites "
            "(harness list tasks shows them, e.g. zoo-mini8)"
        )
    if not issubclass(entry.obj, FinetunableZoo):
        raise HarnessError(
            f"{suite!r} takes its ground truth from published tables; the harness fine-tunes "
            "only zoos it can build (e.g. zoo-mini8)"
        )
    options = entry.resolve_params(parse_assignments(suite_options, "--suite-set"))
    chosen = resolve_device(device)
    zoo = entry.obj(
        SuiteContext(
            mirror=mirror, cache_dir=cache_dir(), device=chosen, progress=not quiet,
            options=options,
        )
    )  # fmt: skip
    if only:
        zoo.select_tasks(split_names(only, "--only"))
    zoo.prepare()
    pairs = zoo.finetune_pairs()
    log = KeyedLog(zoo.finetune_log())
    truth = finetune_pairs(
        pairs, zoo.finetune_protocol(), log, device=chosen, progress=not quiet,
        desc=f"{suite} fine-tuning",
    )  # fmt: skip
    sources = list(dict.fromkeys(pair.source for pair in pairs))
    targets = list(truth)
    click.echo(f"\n{suite}: fine-tuned test accuracy (%), best on validation")
    rows = [(source, *(_cell(truth[t].get(source)) for t in targets)) for source in sources]
    print_table(["source", *targets], rows)
    click.echo(f"log: {zoo.finetune_log()}")


def _cell(result: object) -> str:
    return "–" if result is None else f"{result.test:.1f}"  # type: ignore[attr-defined]
