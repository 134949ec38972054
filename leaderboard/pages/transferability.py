"""The transferability page: per zoo suite, estimators × targets by weighted Kendall τ.

One table per zoo suite (``metric == "tau_w"``): each measured estimator's τ_w per target
and its mean, with Pearson r and top-1 regret averaged over targets, and the estimator's
own seconds (``method_info.estimator_total_s``: the scoring alone, features extracted
once per (source, target) and cached) as its cost; published rows (the suite's
``published`` list: SFDA's and LogME's τ_w on SFDA's group-1 zoo, ...) sit beside the
measured ones.
"""

from __future__ import annotations

import numpy as np

from leaderboard import format as fmt
from leaderboard.catalog import SuiteInfo
from leaderboard.cells import Cell
from leaderboard.pages.base import Page, PageKind, Site, citation, source_link
from leaderboard.tables import Column, Field, Row, Table

PAGE = "transferability.html"
FAMILY = "transferability"


def _number(value: float | None, digits: int = 3) -> Field:
    if value is None:
        return Field("–")
    return Field(fmt.number(float(value), digits), sort=float(value))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def zoo_suites(suites: dict[str, SuiteInfo], cells: dict[str, list[Cell]]) -> list[str]:
    """Suites that rank a zoo and have something to show: estimator runs or published τ_w."""
    return sorted(
        name
        for name, suite in suites.items()
        if suite.metric == "tau_w"
        and (suite.published or any(c.family == FAMILY for c in cells.get(name, [])))
    )


def _measured_row(cell: Cell, tasks: list[str]) -> Row:
    records = [run.record for run in cell.runs]
    per_task = {
        t: _mean([r["tasks"][t]["metric"] for r in records if t in r["tasks"]]) for t in tasks
    }
    pearson = _mean([e["metrics"]["pearson"] for r in records for e in r["tasks"].values()])
    regret = _mean([e["metrics"]["top1_regret"] for r in records for e in r["tasks"].values()])
    seconds = _mean([r["method_info"]["estimator_total_s"] for r in records if "method_info" in r])
    average = cell.stat("average").mean
    runs = [(f"seed {run.record['seed']}", f"runs/{run.page}") for run in cell.runs]
    return Row(
        cells={
            "estimator": Field(cell.method, href=None, links=runs),
            "source": Field("measured"),
            "mean": _number(average),
            **{f"task:{t}": _number(per_task[t]) for t in tasks},
            "pearson": _number(pearson),
            "regret": _number(regret, 2),
            "seconds": Field(fmt.seconds(seconds), sort=seconds)
            if seconds is not None
            else Field("–"),
        },
        data={
            "estimator": cell.method,
            "source": "measured",
            "mean_tau_w": average,
            **{f"tau_w:{t}": per_task[t] for t in tasks},
            "pearson": pearson,
            "top1_regret": regret,
            "estimator_s": seconds,
            "runs": len(cell.runs),
        },
        family=FAMILY,
        search=cell.method,
    )


class TransferabilityPages(PageKind):
    """``transferability.html``: one τ_w table per zoo suite (only when there is one)."""

    def add_to(self, site: Site) -> None:
        names = zoo_suites(self.data.suites, self.data.suite_cells)
        if not names:
            return
        tables = []
        for name in names:
            suite = self.data.suites[name]
            cells = [c for c in self.data.suite_cells.get(name, []) if c.family == FAMILY]
            tasks = list(suite.tasks) or sorted({t for c in cells for t in c.tasks})
            table = Table(
                id=f"transferability-{self.data.suite_slugs[name]}",
                title=f"{name}: weighted Kendall τ per target",
                columns=[
                    Column("estimator", "estimator", sticky=True),
                    Column("source", "source"),
                    Column("mean", "mean τ_w", numeric=True, title="mean over targets"),
                    *(Column(f"task:{t}", t, numeric=True) for t in tasks),
                    Column("pearson", "Pearson r", numeric=True, title="mean over targets"),
                    Column(
                        "regret",
                        "top-1 regret",
                        numeric=True,
                        title="accuracy points lost by fine-tuning the estimator's top "
                        "source instead of the best one (mean over targets)",
                    ),
                    Column(
                        "seconds",
                        "estimator time",
                        numeric=True,
                        title="seconds of scoring, all sources × targets, cached features",
                    ),
                ],
                download_stem=f"data/transferability-{self.data.suite_slugs[name]}",
                note="τ_w: scipy.stats.weightedtau between the estimator's scores and the "
                "fine-tuned test accuracy of each source (1 = same ranking, top ranks "
                "weigh most)."
                + (
                    " Published rows are the papers' numbers on the same zoo."
                    if suite.published
                    else ""
                ),
            )
            for cell in sorted(cells, key=lambda c: -(c.stat("average").mean or -9.0)):
                table.rows.append(_measured_row(cell, tasks))
            for published in suite.published:
                link = source_link(published.source)
                table.rows.append(
                    Row(
                        cells={
                            "estimator": Field(published.method),
                            "source": Field(citation(published), href=link, css="published"),
                            "mean": _number(published.average),
                            **{f"task:{t}": _number(published.per_task.get(t)) for t in tasks},
                        },
                        data={
                            "estimator": published.method,
                            "source": published.source,
                            "mean_tau_w": published.average,
                            **{f"tau_w:{t}": published.per_task.get(t) for t in tasks},
                        },
                        css="published",
                    )
                )
            tables.append(table)
        site.tables += tables
        site.views.append(
            (
                "Transferability",
                PAGE,
                f"estimators ranking model zoos ({', '.join(names)}) by weighted Kendall τ "
                "against fine-tuned accuracy, beside the published τ_w",
            )
        )
        site.pages.append(
            Page(
                PAGE,
                "transferability.html",
                {"title": "Transferability — merging harness", "tables": tables},
            )
        )
