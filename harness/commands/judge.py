"""``harness judge``: judges on their own (the CrossEval meta-evaluation)."""

from __future__ import annotations

from pathlib import Path

import click

from harness import progress
from harness.commands.options import mirror_option, print_table, split_names

DEFAULT_OUT = Path("judge-results")


@click.group("judge")
def judge_group() -> None:
    """Judges that score generated responses (--judge local:..., openai:..., replay:...)."""


@judge_group.command("meta")
@click.option("--judge", "judge_spec", required=True, help="The judge, e.g. local:<hub id>.")
@click.option("--only", default=None, help="Comma-separated CrossEval capabilities (slugs).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most N prompts per capability."
)
@click.option(
    "--attachments",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of attachment files (default: attachments/ beside test.csv).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Directory for the result JSON.",
)
@mirror_option("Local mirror of hub artifacts; env HARNESS_MIRROR.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def meta_command(
    judge_spec: str,
    only: str | None,
    limit: int | None,
    attachments: Path | None,
    out: Path,
    mirror: Path | None,
    quiet: bool,
) -> None:
    """CrossEval's judge meta-evaluation: the judge scores each human-rated response with
    the other two as references; Pearson, Spearman and Kendall against the human mean.

    \b
    Examples:
      harness judge meta --judge openai:gpt-4o --limit 20
      harness judge meta --judge local:Qwen/Qwen2.5-7B-Instruct --only coding,reasoning
      harness judge meta --judge replay:judgments.jsonl --mirror /data/mirror
    """
    from tasks.text.crosseval.meta import PUBLISHED, meta_evaluate, write_result

    progress.set_enabled(not quiet)
    capabilities = split_names(only, "--only") if only else None
    result = meta_evaluate(
        judge_spec,
        mirror=mirror,
        capabilities=capabilities,
        limit=limit,
        attachments=attachments,
        progress=not quiet,
    )
    path = write_result(result, out)

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = [("overall", result["overall"]["n"], *(cell(result["overall"][m]) for m in _METRICS))]
    for capability, entry in result["per_capability"].items():
        rows.append((capability, entry["n"], *(cell(entry[m]) for m in _METRICS)))
    for published in PUBLISHED:
        rows.append(
            (f"paper: {published.judge}", "", *(f"{getattr(published, m):.3f}" for m in _METRICS))
        )
    click.echo(
        f"\njudge {result['judge']['identity']} on CrossEval ({result['responses']} responses)"
    )
    print_table(["", "n", *_METRICS], rows)
    outcomes = ", ".join(f"{k} {v}" for k, v in result["judge_outcomes"].items() if v)
    filtered = ", ".join(f"{k} {v}" for k, v in result["filtered"].items()) or "none"
    click.echo(f"judge outcomes: {outcomes or 'none'}; filtered: {filtered}")
    click.echo(f"result: {path}")


_METRICS = ("pearson", "spearman", "kendall")
