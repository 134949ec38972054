"""The merge-ability page: which pre-merge signals rank the merges the leaderboard holds.

One table per suite (``harness transfer mergeability`` results): each signal's weighted
Kendall τ and Pearson r against the accuracy merges reached, at the record level (a
merge's normalised average) and the task level (the merged model's normalised accuracy
per task), with the number of points. A pool signal is constant over one suite's records
(one pool): shown as such, with no τ.
"""

from __future__ import annotations

import json
import re
from typing import Any

from leaderboard import format as fmt
from leaderboard.pages.base import Page, PageKind, Site
from leaderboard.tables import Column, Field, Row, Table

PAGE = "mergeability.html"
LEVELS = ("record", "task")
WHAT = {
    "cosine": "task-vector cosine (record: mean over pairs; task: to the other tasks)",
    "sign_conflict": "TIES sign conflict after the top-20% trim (lower is better)",
    "norm_spread": "task-vector norm spread (record: CV; task: |log-norm gap|; lower is better)",
}


def _number(score: dict[str, Any], key: str) -> Field:
    if score.get("constant"):
        return Field("const", title="the signal is the same for every point: it ranks nothing")
    value = score.get(key)
    if value is None:
        return Field("–")
    return Field(fmt.number(float(value), 3), sort=float(value))


class MergeabilityPages(PageKind):
    """``mergeability.html`` (only when there are merge-ability results) and their JSON."""

    def add_to(self, site: Site) -> None:
        results = sorted(self.data.mergeability_results, key=lambda r: str(r["suite"]))
        if not results:
            return
        tables = []
        for result in results:
            suite = str(result["suite"])
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", suite)
            file = f"mergeability/{result['_file']}"
            site.files[file] = (
                json.dumps({k: v for k, v in result.items() if k != "_file"}, indent=2) + "\n"
            )
            counts = {level: len(result["points"].get(level, [])) for level in LEVELS}
            estimator = result.get("estimator")
            table = Table(
                id=f"mergeability-{slug}",
                title=f"{suite}: pre-merge signals against {counts['record']} merges",
                columns=[
                    Column("signal", "signal", sticky=True),
                    Column("what", "what"),
                    *(
                        column
                        for level in LEVELS
                        for column in (
                            Column(f"{level}:tau_w", f"τ_w ({level})", numeric=True),
                            Column(f"{level}:pearson", f"r ({level})", numeric=True),
                            Column(f"{level}:n", f"n ({level})", numeric=True),
                        )
                    ),
                ],
                download_stem=f"data/mergeability-{slug}",
                note=(
                    f"Built {result['created']} on {result.get('checkpoint_set', '?')}. "
                    "Each merge record is a point (normalised average accuracy) and so is "
                    "each of its tasks (the merged model's normalised accuracy there); "
                    "signals are oriented so that a positive τ_w means they rank merges "
                    "as expected. "
                    + (
                        f"{estimator} is applied to the merged model's features on "
                        f"{result.get('examples')} training examples per task. "
                        if estimator
                        else ""
                    )
                    + (
                        f"{len(result['skipped'])} record(s) of another build skipped."
                        if result.get("skipped")
                        else ""
                    )
                ),
            )
            for signal in result["signals"]:
                cells = {
                    "signal": Field(str(signal), href=file),
                    "what": Field(WHAT.get(signal, f"{signal} on the merged model's features")),
                }
                data: dict[str, Any] = {"suite": suite, "signal": signal}
                for level in LEVELS:
                    score = result["scores"].get(level, {}).get(signal, {})
                    cells[f"{level}:tau_w"] = _number(score, "tau_w")
                    cells[f"{level}:pearson"] = _number(score, "pearson")
                    n = int(score.get("n", 0))
                    cells[f"{level}:n"] = Field(str(n), sort=n)
                    data.update(
                        {
                            f"{level}_tau_w": score.get("tau_w"),
                            f"{level}_pearson": score.get("pearson"),
                            f"{level}_n": n,
                            f"{level}_constant": bool(score.get("constant")),
                        }
                    )
                table.rows.append(Row(cells=cells, data=data))
            tables.append(table)
        site.tables += tables
        site.views.append(
            (
                "Merge-ability",
                PAGE,
                f"{len(results)} suite(s): do task-vector cosine, sign conflict, norm spread or "
                "an estimator on the merged features rank the merges by the accuracy they "
                "reached?",
            )
        )
        site.pages.append(
            Page(
                PAGE,
                "mergeability.html",
                {"title": "Merge-ability — merging harness", "tables": tables},
            )
        )
