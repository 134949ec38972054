"""Suite pages: the methods × tasks table, published numbers beside measured ones, plots."""

from __future__ import annotations

from typing import Any

from leaderboard import format as fmt
from leaderboard.catalog import SuiteInfo, safe_url
from leaderboard.cells import Cell, Stat
from leaderboard.pages.base import (
    Page,
    PageKind,
    Site,
    citation,
    published_count,
    published_index,
    runs_field,
    source_link,
    stat_data,
    stat_field,
)
from leaderboard.pages.costs import cost_page, cost_plots
from leaderboard.pages.distillation import distillation_page
from leaderboard.pages.routing import routing_cells, routing_page
from leaderboard.tables import Column, Field, Row, Table


class SuitePages(PageKind):
    """One page per suite (``suites/<slug>.html``), registered or only known from records."""

    def add_to(self, site: Site) -> None:
        for name in sorted(self.data.suites):
            suite, slug = self.data.suites[name], self.data.suite_slugs[name]
            cells = self.data.suite_cells[name]  # whole-suite cells first, subsets after
            results = self.suite_table(suite, cells, slug)
            published = self.published_table(suite, cells, slug)
            site.tables += [results, published]
            site.pages.append(
                Page(
                    f"suites/{slug}.html",
                    "suite.html",
                    {
                        "title": f"{name} — leaderboard",
                        "suite": suite,
                        "results": results,
                        "published": published,
                        "cost_page": cost_page(slug),
                        "distillation_page": (
                            distillation_page(slug)
                            if any(c.family == "distillation" and c.runs for c in cells)
                            else None
                        ),
                        "routing_page": routing_page(slug) if routing_cells(cells) else None,
                        "reference_url": safe_url(suite.reference),
                        "run_count": sum(len(c.runs) for c in cells),
                    },
                )
            )

    def suite_table(self, suite: SuiteInfo, cells: list[Cell], slug: str) -> Table:
        # the suite's task order, then any task only records know; none nobody scored
        tasks = [t for t in suite.tasks if any(t in c.tasks for c in cells)]
        for cell in cells:
            tasks.extend(t for t in cell.tasks if t not in tasks)
        published = published_index(suite)
        _, fronts = cost_plots(self.data, suite, cells)
        # Method (sticky), then the columns a reader compares first (accuracy, literature,
        # cost), then how the cell was run, then one column per task: with 20 tasks the
        # key columns stay on screen and the task columns scroll.
        columns = [
            Column("method", "method", sticky=True),
            Column("average", "average", numeric=True, title="mean over tasks (± std)"),
            Column("normalized", "normalised", numeric=True, title="relative to experts, %"),
            Column("published", "published", numeric=True, title="number from the literature"),
            Column("delta", "Δ", numeric=True, title="measured − published"),
            Column(
                "method_s",
                "merge time",
                numeric=True,
                title="method step + building per-task models, seconds",
            ),
            Column(
                "method_memory",
                "method memory",
                numeric=True,
                title="the method's own peak above what was resident",
            ),
            Column("extra", "extra params", numeric=True, title="stored beyond one model"),
            Column("runs", "runs", numeric=True, title="number of runs (seeds)"),
            Column("setting", "hyperparameters", title="values used and how they were chosen"),
            Column("family", "family"),
            Column("checkpoint_set", "checkpoints", title="checkpoint set"),
            *[Column(f"task:{t}", t, numeric=True, title=f"{t} (mean ± std)") for t in tasks],
            Column("evaluate_s", "eval time", numeric=True, title="test evaluation"),
            Column(
                "memory", "process peak memory", numeric=True, title="GPU if used, else CPU RSS"
            ),
        ]
        table = Table(
            id="results",
            title=f"{suite.name}: methods × tasks",
            columns=columns,
            download_stem=f"data/suite-{slug}",
            url_state=True,
            filterable=True,
        )
        for index, cell in enumerate(cells):
            average = cell.stat("average")
            match = published.get((cell.method, cell.checkpoint_set))
            delta = (
                average.mean - match.average
                if match is not None and average.mean is not None
                else None
            )
            cells_out: dict[str, Field] = {
                "method": Field(
                    cell.method,
                    sort=cell.method.lower(),
                    href=self.data.method_pages[cell.method],
                ),
                "family": Field(cell.family),
                "setting": Field(cell.chosen, title=f"protocol: {cell.setting}"),
                "checkpoint_set": Field(cell.checkpoint_set),
            }
            data: dict[str, Any] = {
                "suite": cell.suite,
                "checkpoint_set": cell.checkpoint_set,
                "method": cell.method,
                "family": cell.family,
                "setting": cell.setting,
                "hyperparameters": cell.chosen,
                "runs": len(cell.runs),
            }
            for task in tasks:
                stat = cell.stat(f"task:{task}")
                cells_out[f"task:{task}"] = stat_field(stat)
                data.update(stat_data(f"task:{task}", stat))
            cells_out["average"] = stat_field(average)
            cells_out["average"].css = "average"
            cells_out["normalized"] = stat_field(cell.stat("normalized_average"))
            cells_out["runs"] = runs_field(cell)
            data.update(stat_data("average", average))
            data.update(stat_data("normalized_average", cell.stat("normalized_average")))
            if match is not None:
                variants = published_count(suite, cell.method, cell.checkpoint_set)
                cells_out["published"] = Field(
                    fmt.number(match.average),
                    sort=match.average,
                    href=source_link(match.source),
                    title=f"{citation(match)} (checkpoint set {match.checkpoint_set})",
                    detail=f"on {match.checkpoint_set}"
                    + (f", +{more} more below" if (more := variants - 1) > 0 else ""),
                )
                cells_out["delta"] = Field(
                    fmt.signed(delta), sort=delta, css="up" if delta and delta > 0 else "down"
                )
            else:
                cells_out["published"] = Field("–")
                cells_out["delta"] = Field("–")
            data.update(
                {
                    "published_average": match.average if match else None,
                    "published_checkpoint_set": match.checkpoint_set if match else None,
                    "published_source": match.source if match else None,
                    "delta": delta,
                }
            )
            for key, measure, formatter in (
                ("method_s", "merge_s", fmt.seconds),
                ("evaluate_s", "evaluate_s", fmt.seconds),
                ("memory", "peak_memory_bytes", fmt.memory),
                ("method_memory", "method_memory_bytes", fmt.memory),
                ("extra", "extra_parameters", fmt.count),
            ):
                cells_out[key] = stat_field(cell.stat(measure), formatter)
                data.update(stat_data(measure, cell.stat(measure)))
            data.update(stat_data("method_s", cell.stat("method_s")))  # the step alone
            cells_out["memory"].detail = cell.memory_kind
            data["memory_kind"] = cell.memory_kind
            for key, on_front in fronts.items():
                data[f"pareto_{key}"] = on_front[index]
            data["run_ids"] = ";".join(run.record["run_id"] for run in cell.runs)
            table.rows.append(
                Row(
                    cells=cells_out,
                    data=data,
                    family=cell.family,
                    search=" ".join(
                        [cell.method, cell.family, cell.setting, cell.chosen, cell.checkpoint_set]
                    ),
                )
            )
        return table

    def published_table(self, suite: SuiteInfo, cells: list[Cell], slug: str) -> Table:
        table = Table(
            id="published",
            title=f"{suite.name}: published numbers",
            columns=[
                Column("method", "method"),
                Column("checkpoint_set", "checkpoint set"),
                Column("published", "published average", numeric=True),
                Column("measured", "measured average", numeric=True),
                Column("delta", "Δ", numeric=True, title="measured − published"),
                Column("source", "source"),
                Column("note", "note"),
            ],
            download_stem=f"data/suite-{slug}-published",
        )
        for published in suite.published:
            matching = [
                c
                for c in cells
                if c.method == published.method and c.checkpoint_set == published.checkpoint_set
            ]
            measured = matching[0].stat("average") if matching else Stat(None, None, 0)
            delta = measured.mean - published.average if measured.mean is not None else None
            table.rows.append(
                Row(
                    cells={
                        "method": Field(
                            published.method, href=self.data.method_pages.get(published.method)
                        ),
                        "checkpoint_set": Field(published.checkpoint_set),
                        "published": Field(fmt.number(published.average), sort=published.average),
                        "measured": stat_field(measured),
                        "delta": Field(fmt.signed(delta), sort=delta),
                        "source": Field(citation(published), href=source_link(published.source)),
                        "note": Field(published.note),
                    },
                    data={
                        "method": published.method,
                        "checkpoint_set": published.checkpoint_set,
                        "published_average": published.average,
                        **{f"published_task:{t}": v for t, v in published.per_task.items()},
                        **stat_data("measured_average", measured),
                        "delta": delta,
                        "source": published.source,
                        "table": published.table,
                        "note": published.note,
                    },
                )
            )
        return table
