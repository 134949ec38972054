"""The cross-capability page: each cross capability against its two parents, per method.

CrossEval's "law of the weakest link" (Zhong et al. 2024, §4): a model's score on a cross
capability (math in the second language) compared with its scores on the two parent
capabilities. Any suite whose records carry ``suite.summary.weakest_link`` (crosseval,
minicross) gets a table here: one row per method (its whole-suite cell), each cross
capability's score with its parents' min–max and where it falls, and the counts below
both / between / above both. A cell with several seeds is shown on its mean scores, and
the statistics are recomputed from those means with the same function the suites use.
"""

from __future__ import annotations

from typing import Any

from harness.evaluation.weakest_link import weakest_link
from leaderboard import format as fmt
from leaderboard.pages.base import Page, PageKind, Site, cell_label, whole_suite
from leaderboard.tables import Column, Field, Row, Table

PAGE = "cross-capability.html"
POSITION_TEXT = {"below_both": "below both", "between": "between", "above_both": "above both"}


def cross_parents(records: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Cross capability → its two parents, as the suite's records state them."""
    parents: dict[str, tuple[str, str]] = {}
    for record in records:
        statistics = (record.get("suite", {}).get("summary") or {}).get("weakest_link") or {}
        for cross, row in (statistics.get("cross") or {}).items():
            first, second = row["parents"]
            parents.setdefault(cross, (str(first), str(second)))
    return dict(sorted(parents.items()))


class CrossCapabilityPages(PageKind):
    """``cross-capability.html``, only when some suite records weakest-link statistics."""

    def add_to(self, site: Site) -> None:
        tables = []
        for suite_name in sorted(self.data.suites):
            suite = self.data.suites[suite_name]
            cells = [
                c
                for c in whole_suite(suite, self.data.suite_cells[suite_name])
                if c.stat("average").mean is not None
            ]
            parents = cross_parents([run.record for cell in cells for run in cell.runs])
            if parents:
                tables.append(self.suite_table(suite_name, cells, parents))
        if not tables:
            return
        site.tables += tables
        site.views.append(
            (
                "Cross capabilities",
                PAGE,
                "each cross capability against its two parents (the weakest-link statistics)",
            )
        )
        site.pages.append(
            Page(
                PAGE,
                "cross_capability.html",
                {"title": "Cross capabilities — merging harness", "tables": tables},
            )
        )

    def suite_table(self, suite: str, cells: list, parents: dict[str, tuple[str, str]]) -> Table:
        table = Table(
            id=f"cross-{self.data.suite_slugs[suite]}",
            title=f"{suite}: cross capabilities against their parents",
            columns=[
                Column("method", "method", sticky=True),
                Column("family", "family"),
                *(
                    Column(
                        f"cross:{cross}",
                        cross,
                        numeric=True,
                        title=f"{cross} (parents {first} and {second}): its score, under it "
                        "the parents' min–max and where it falls",
                    )
                    for cross, (first, second) in parents.items()
                ),
                Column("below_both", "below both", numeric=True),
                Column("between", "between", numeric=True),
                Column("above_both", "above both", numeric=True),
                Column(
                    "below_both_parents_differ",
                    "below both (parents differ)",
                    numeric=True,
                    title="among cross capabilities whose parents differ by more than "
                    "3 points, as the paper counts",
                ),
            ],
            download_stem=f"data/cross-{self.data.suite_slugs[suite]}",
            note="Scores on one model: a cross capability below both parents is the "
            "weakest-link finding (Zhong et al. 2024). Means over seeds where a cell has "
            "several. Baselines that keep every expert (individual) score each parent with "
            "its own expert and a cross capability with the better parent's expert.",
        )
        for cell in cells:
            scores = {
                task: cell.stat(f"task:{task}").mean
                for task in cell.tasks
                if cell.stat(f"task:{task}").mean is not None
            }
            statistics = weakest_link(scores, parents)
            cells_shown: dict[str, Field] = {
                "method": Field(
                    cell_label(cell, cells), href=self.data.method_pages.get(cell.method)
                ),
                "family": Field(cell.family),
            }
            data: dict[str, Any] = {"method": cell.method, "family": cell.family}
            for cross in parents:
                row = statistics["cross"].get(cross)
                if row is None:
                    cells_shown[f"cross:{cross}"] = Field("–")
                    data[cross] = None
                    continue
                cells_shown[f"cross:{cross}"] = Field(
                    fmt.number(row["score"]),
                    sort=row["score"],
                    detail=f"{fmt.number(row['min_parent'])}–{fmt.number(row['max_parent'])} · "
                    f"{POSITION_TEXT[row['position']]}",
                    css=row["position"].replace("_", "-"),
                )
                data[cross] = row["score"]
                data[f"{cross}_min_parent"] = row["min_parent"]
                data[f"{cross}_max_parent"] = row["max_parent"]
                data[f"{cross}_position"] = row["position"]
            for key in ("below_both", "between", "above_both", "below_both_parents_differ"):
                cells_shown[key] = Field(str(statistics[key]), sort=statistics[key])
                data[key] = statistics[key]
            table.rows.append(Row(cells=cells_shown, data=data, family=cell.family))
        return table
