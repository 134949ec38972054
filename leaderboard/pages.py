"""What each page shows, computed from the records: the site model, before any HTML.

Pages are addressed by paths relative to the site root (``suites/mini8.html``); the
templates prefix them with the way back to the root, so the site works from ``file://``
and from any sub-folder of a static host.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.suite import Published
from leaderboard import format as fmt
from leaderboard.catalog import (
    SuiteInfo,
    method_from_record,
    registered_methods,
    registered_suites,
    safe_url,
    suite_from_record,
)
from leaderboard.cells import Cell, Run, Stat, group_runs
from leaderboard.names import UniqueNames
from leaderboard.plot import Point, scatter
from leaderboard.tables import Column, Field, Row, Table

# (measure, label, value format, tick format): the cost axes, one accuracy-vs-cost plot each.
COSTS: list[tuple[str, str, Callable[[Any], str], Callable[[float], str]]] = [
    ("method_s", "merge time (method step)", fmt.seconds, lambda v: fmt.tick(v, "s", False)),
    ("extra_parameters", "extra stored parameters", fmt.count, fmt.tick),
    ("peak_memory_bytes", "peak memory", fmt.memory, lambda v: fmt.tick(v, "B")),
]


# Suite pages live one folder below the root; the SVG links are written as they are.
SUITE_PAGE_ROOT = "../"


@dataclass
class Page:
    path: str  # relative to the site root
    template: str
    context: dict[str, Any]


@dataclass
class Site:
    pages: list[Page] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)  # every table with downloads
    files: dict[str, str] = field(default_factory=dict)  # extra files: path -> text


def _stat_field(stat: Stat, formatter: Callable[[Any], str] = fmt.number) -> Field:
    """``mean ± std`` (std only with two or more runs), sorting by the mean."""
    if stat.mean is None:
        return Field("–")
    text = formatter(stat.mean)
    if stat.n > 1 and stat.std is not None:
        text += f" ± {formatter(stat.std)}"
    return Field(text, sort=stat.mean, title=f"mean over {stat.n} run(s)")


def _stat_data(prefix: str, stat: Stat) -> dict[str, Any]:
    return {f"{prefix}_mean": stat.mean, f"{prefix}_std": stat.std, f"{prefix}_n": stat.n}


def _runs_field(cell: Cell) -> Field:
    links = [(f"seed {run.record['seed']}", f"runs/{run.page}") for run in cell.runs]
    return Field(str(len(cell.runs)), sort=len(cell.runs), links=links)


def _published_index(suite: SuiteInfo) -> dict[tuple[str, str], Published]:
    """The first published number per (method, checkpoint set); all are in the suite's
    published table (a paper may report several variants, e.g. task- and layer-wise)."""
    index: dict[tuple[str, str], Published] = {}
    for published in suite.published:
        index.setdefault((published.method, published.checkpoint_set), published)
    return index


def _published_count(suite: SuiteInfo, method: str, checkpoint_set: str) -> int:
    return sum(p.method == method and p.checkpoint_set == checkpoint_set for p in suite.published)


def _source_link(source: str) -> str | None:
    return safe_url(source)


class SiteBuilder:
    """Collects records, registry metadata and published numbers into a :class:`Site`."""

    def __init__(self, runs: list[Run], problems: list[str]) -> None:
        self.runs = runs
        self.problems = problems
        self.methods = registered_methods()
        self.suites = registered_suites()
        for run in runs:
            self.methods.setdefault(run.record["method"]["name"], method_from_record(run.record))
            self.suites.setdefault(run.record["suite"]["name"], suite_from_record(run.record))
        names = UniqueNames()
        self.method_pages = {name: f"methods/{names.take(name)}.html" for name in self.methods}
        names = UniqueNames()
        self.suite_pages = {name: names.take(name) for name in sorted(self.suites)}
        names = UniqueNames()
        for run in sorted(runs, key=lambda r: str(r.path)):
            run.page = f"{names.take(run.record['run_id'])}.html"
        self.cells = group_runs(runs)
        self.site = Site()

    # ---------------------------------------------------------------- suite tables
    @staticmethod
    def _ranked(cells: list[Cell]) -> list[Cell]:
        """Best average first (cells without one last), so the unsorted view is a ranking."""
        return sorted(
            cells,
            key=lambda c: (
                c.stat("average").mean is None,
                -(c.stat("average").mean or 0.0),
                c.method,
                c.key,
            ),
        )

    def _label(self, cell: Cell, cells: list[Cell]) -> str:
        same = [c for c in cells if c.method == cell.method]
        return cell.method if len(same) == 1 else f"{cell.method} · {cell.setting}"

    @staticmethod
    def _whole_suite(suite: SuiteInfo, cells: list[Cell]) -> list[Cell]:
        """Cells scored on the suite's whole task list: only their averages compare (a run
        on two of eight tasks is not better for having a higher mean over those two)."""
        full = set(suite.tasks) or max((set(c.tasks) for c in cells), key=len, default=set())
        return [c for c in cells if set(c.tasks) == full]

    def _plots(
        self, suite: SuiteInfo, cells: list[Cell]
    ) -> tuple[list[dict[str, Any]], dict[str, list[bool]]]:
        plots, fronts = [], {}
        whole = {id(c) for c in self._whole_suite(suite, cells)}
        for measure, label, formatter, tick_format in COSTS:
            usable = [
                c
                for c in cells
                if id(c) in whole
                and c.stat("average").mean is not None
                and c.stat(measure).mean is not None
            ]
            points = [
                Point(
                    label=self._label(c, cells),
                    cost=c.stat(measure).mean,
                    accuracy=c.stat("average").mean,
                    href=SUITE_PAGE_ROOT + self.method_pages[c.method],
                    detail=f"{c.setting}; checkpoints {c.checkpoint_set}; n={len(c.runs)}",
                )
                for c in usable
            ]
            svg, front = scatter(
                points,
                title=f"average vs {label}",
                cost_label=label,
                cost_format=formatter,
                tick_format=tick_format,
                whole_costs=measure != "method_s",  # parameters and bytes come whole
            )
            plots.append({"measure": measure, "label": label, "svg": svg})
            on_front = {id(c): keep for c, keep in zip(usable, front)}
            fronts[measure] = [on_front.get(id(c), False) for c in cells]
        return plots, fronts

    def suite_table(self, suite: SuiteInfo, cells: list[Cell], slug: str) -> Table:
        # the suite's task order, then any task only records know; none nobody scored
        tasks = [t for t in suite.tasks if any(t in c.tasks for c in cells)]
        for cell in cells:
            tasks.extend(t for t in cell.tasks if t not in tasks)
        published = _published_index(suite)
        _, fronts = self._plots(suite, cells)
        columns = [
            Column("method", "method"),
            Column("family", "family"),
            Column("setting", "hyperparameters", title="how hyperparameters were chosen"),
            Column("checkpoint_set", "checkpoints", title="checkpoint set"),
            *[Column(f"task:{t}", t, numeric=True, title=f"{t} (mean ± std)") for t in tasks],
            Column("average", "average", numeric=True, title="mean over tasks (± std)"),
            Column("normalized", "normalised", numeric=True, title="relative to experts, %"),
            Column("runs", "runs", numeric=True, title="number of runs (seeds)"),
            Column("published", "published", numeric=True, title="number from the literature"),
            Column("delta", "Δ", numeric=True, title="measured − published"),
            Column("method_s", "merge time", numeric=True, title="method step, seconds"),
            Column("evaluate_s", "eval time", numeric=True, title="test evaluation"),
            Column("memory", "peak memory", numeric=True, title="GPU if used, else CPU RSS"),
            Column("extra", "extra params", numeric=True, title="stored beyond one model"),
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
                    cell.method, sort=cell.method.lower(), href=self.method_pages[cell.method]
                ),
                "family": Field(cell.family),
                "setting": Field(cell.setting),
                "checkpoint_set": Field(cell.checkpoint_set),
            }
            data: dict[str, Any] = {
                "suite": cell.suite,
                "checkpoint_set": cell.checkpoint_set,
                "method": cell.method,
                "family": cell.family,
                "setting": cell.setting,
                "runs": len(cell.runs),
            }
            for task in tasks:
                stat = cell.stat(f"task:{task}")
                cells_out[f"task:{task}"] = _stat_field(stat)
                data.update(_stat_data(f"task:{task}", stat))
            cells_out["average"] = _stat_field(average)
            cells_out["average"].css = "average"
            cells_out["normalized"] = _stat_field(cell.stat("normalized_average"))
            cells_out["runs"] = _runs_field(cell)
            data.update(_stat_data("average", average))
            data.update(_stat_data("normalized_average", cell.stat("normalized_average")))
            if match is not None:
                variants = _published_count(suite, cell.method, cell.checkpoint_set)
                cells_out["published"] = Field(
                    fmt.number(match.average),
                    sort=match.average,
                    href=_source_link(match.source),
                    title=f"{match.source} (checkpoint set {match.checkpoint_set})",
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
                ("method_s", "method_s", fmt.seconds),
                ("evaluate_s", "evaluate_s", fmt.seconds),
                ("memory", "peak_memory_bytes", fmt.memory),
                ("extra", "extra_parameters", fmt.count),
            ):
                cells_out[key] = _stat_field(cell.stat(measure), formatter)
                data.update(_stat_data(measure, cell.stat(measure)))
            cells_out["memory"].detail = cell.memory_kind
            data["memory_kind"] = cell.memory_kind
            for measure, *_ in COSTS:
                data[f"pareto_{measure}"] = fronts[measure][index]
            data["run_ids"] = ";".join(run.record["run_id"] for run in cell.runs)
            table.rows.append(
                Row(
                    cells=cells_out,
                    data=data,
                    family=cell.family,
                    search=" ".join([cell.method, cell.family, cell.setting, cell.checkpoint_set]),
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
                            published.method, href=self.method_pages.get(published.method)
                        ),
                        "checkpoint_set": Field(published.checkpoint_set),
                        "published": Field(fmt.number(published.average), sort=published.average),
                        "measured": _stat_field(measured),
                        "delta": Field(fmt.signed(delta), sort=delta),
                        "source": Field(published.source, href=_source_link(published.source)),
                        "note": Field(published.note),
                    },
                    data={
                        "method": published.method,
                        "checkpoint_set": published.checkpoint_set,
                        "published_average": published.average,
                        **{f"published_task:{t}": v for t, v in published.per_task.items()},
                        **_stat_data("measured_average", measured),
                        "delta": delta,
                        "source": published.source,
                        "note": published.note,
                    },
                )
            )
        return table

    # ---------------------------------------------------------------- pages
    def build(self) -> Site:
        by_suite: dict[str, list[Cell]] = defaultdict(list)
        for cell in self._ranked(self.cells):
            by_suite[cell.suite].append(cell)
        suite_rows = []
        for name in sorted(self.suites):
            suite, cells, slug = self.suites[name], by_suite.get(name, []), self.suite_pages[name]
            whole = self._whole_suite(suite, cells)
            whole_ids = {id(c) for c in whole}
            cells = whole + [c for c in cells if id(c) not in whole_ids]  # subsets rank after
            results = self.suite_table(suite, cells, slug)
            published = self.published_table(suite, cells, slug)
            plots, _ = self._plots(suite, cells)
            self.site.tables += [results, published]
            self.site.pages.append(
                Page(
                    f"suites/{slug}.html",
                    "suite.html",
                    {
                        "title": f"{name} — leaderboard",
                        "suite": suite,
                        "results": results,
                        "published": published,
                        "plots": plots,
                        "reference_url": safe_url(suite.reference),
                        "run_count": sum(len(c.runs) for c in cells),
                    },
                )
            )
            suite_rows.append((suite, cells, slug))
        self._method_pages()
        self._run_pages()
        self._index(suite_rows)
        return self.site

    def _method_pages(self) -> None:
        for name, info in sorted(self.methods.items()):
            cells = [c for c in self.cells if c.method == name]
            results = Table(
                id="method-results",
                title=f"{name}: results across suites",
                columns=[
                    Column("suite", "suite"),
                    Column("checkpoint_set", "checkpoints"),
                    Column("setting", "hyperparameters"),
                    Column("average", "average", numeric=True),
                    Column("normalized", "normalised", numeric=True),
                    Column("runs", "runs", numeric=True),
                    Column("published", "published", numeric=True),
                    Column("delta", "Δ", numeric=True),
                    Column("method_s", "merge time", numeric=True),
                    Column("extra", "extra params", numeric=True),
                ],
                download_stem=f"data/{self.method_pages[name][:-5]}",
            )
            for cell in cells:
                suite = self.suites[cell.suite]
                match = _published_index(suite).get((cell.method, cell.checkpoint_set))
                average = cell.stat("average")
                delta = average.mean - match.average if match and average.mean is not None else None
                results.rows.append(
                    Row(
                        cells={
                            "suite": Field(
                                cell.suite, href=f"suites/{self.suite_pages[cell.suite]}.html"
                            ),
                            "checkpoint_set": Field(cell.checkpoint_set),
                            "setting": Field(cell.setting),
                            "average": _stat_field(average),
                            "normalized": _stat_field(cell.stat("normalized_average")),
                            "runs": _runs_field(cell),
                            "published": Field(
                                fmt.number(match.average) if match else "–",
                                sort=match.average if match else None,
                                title=f"{match.source} ({match.checkpoint_set})" if match else "",
                            ),
                            "delta": Field(fmt.signed(delta), sort=delta),
                            "method_s": _stat_field(cell.stat("method_s"), fmt.seconds),
                            "extra": _stat_field(cell.stat("extra_parameters"), fmt.count),
                        },
                        data={
                            "suite": cell.suite,
                            "checkpoint_set": cell.checkpoint_set,
                            "setting": cell.setting,
                            **_stat_data("average", average),
                            **_stat_data("normalized_average", cell.stat("normalized_average")),
                            "runs": len(cell.runs),
                            "published_average": match.average if match else None,
                            "delta": delta,
                            **_stat_data("method_s", cell.stat("method_s")),
                            **_stat_data("extra_parameters", cell.stat("extra_parameters")),
                        },
                    )
                )
            params = Table(
                id="params",
                title=f"{name}: hyperparameters",
                columns=[
                    Column("name", "name"),
                    Column("default", "paper default"),
                    Column("grid", "validation grid"),
                    Column("range", "range / choices"),
                    Column("help", "meaning"),
                ],
                download_stem=f"data/{self.method_pages[name][:-5]}-hyperparameters",
            )
            for param, spec in info.params.items():
                low, high, choices = spec.get("low"), spec.get("high"), spec.get("choices")
                bounds = (
                    ", ".join(map(str, choices))
                    if choices
                    else (
                        f"[{low if low is not None else '−∞'}, {high if high is not None else '∞'}]"
                    )
                )
                params.rows.append(
                    Row(
                        cells={
                            "name": Field(param),
                            "default": Field(json.dumps(spec.get("default"), default=str)),
                            "grid": Field(
                                ", ".join(map(str, spec.get("grid") or [])) or "– (default used)"
                            ),
                            "range": Field(bounds),
                            "help": Field(str(spec.get("help") or "")),
                        },
                        data={
                            "name": param,
                            "default": spec.get("default"),
                            "grid": json.dumps(spec.get("grid") or [], default=str),
                            "low": low,
                            "high": high,
                            "choices": json.dumps(choices, default=str) if choices else None,
                            "help": spec.get("help") or "",
                        },
                    )
                )
            published_here = [
                (suite_name, p)
                for suite_name, suite in sorted(self.suites.items())
                for p in suite.published
                if p.method == name
            ]
            self.site.tables += [results, params]
            self.site.pages.append(
                Page(
                    self.method_pages[name],
                    "method.html",
                    {
                        "title": f"{name} — method",
                        "method": info,
                        "family": info.family or (cells[0].family if cells else ""),
                        "reference_url": safe_url(info.reference),
                        "results": results,
                        "params": params,
                        "published_here": published_here,
                        "suite_pages": self.suite_pages,
                    },
                )
            )

    def _run_pages(self) -> None:
        cell_of = {id(run): cell for cell in self.cells for run in cell.runs}
        for run in self.runs:
            record = run.record
            cell = cell_of[id(run)]
            selection = record["selection"]
            chosen = record["hyperparameters"]
            candidates = [
                {
                    "hyperparameters": c.get("hyperparameters", {}),
                    "score": c.get("score"),
                    "chosen": c.get("hyperparameters") == chosen,
                }
                for c in selection.get("candidates") or []
            ]
            self.site.files[f"runs/{run.page[:-5]}.json"] = json.dumps(record, indent=2) + "\n"
            siblings = [r for r in cell.runs if r is not run]
            self.site.pages.append(
                Page(
                    f"runs/{run.page}",
                    "run.html",
                    {
                        "title": f"{record['run_id']} — run",
                        "record": record,
                        "cell": cell,
                        "source_path": str(run.path),
                        "candidates": candidates,
                        "siblings": siblings,
                        "record_json": f"runs/{run.page[:-5]}.json",
                        "method_page": self.method_pages[record["method"]["name"]],
                        "suite_page": f"suites/{self.suite_pages[record['suite']['name']]}.html",
                        "reference_url": safe_url(record["method"]["reference"]),
                    },
                )
            )

    def _index(self, suite_rows: list[tuple[SuiteInfo, list[Cell], str]]) -> None:
        suites = Table(
            id="suites",
            title="Suites",
            columns=[
                Column("suite", "suite"),
                Column("description", "description"),
                Column("tasks", "tasks", numeric=True),
                Column("checkpoints", "checkpoint sets"),
                Column("methods", "methods", numeric=True),
                Column("runs", "runs", numeric=True),
                Column("best", "best average"),
                Column("published", "published numbers", numeric=True),
            ],
            download_stem="data/suites",
        )
        for suite, cells, slug in suite_rows:
            tasks = set(suite.tasks).union(*(c.tasks for c in cells)) if cells else set(suite.tasks)
            ranked = [c for c in cells if c.stat("average").mean is not None]
            best = max(ranked, key=lambda c: c.stat("average").mean) if ranked else None
            checkpoint_sets = sorted({c.checkpoint_set for c in cells})
            runs = sum(len(c.runs) for c in cells)
            suites.rows.append(
                Row(
                    cells={
                        "suite": Field(suite.name, href=f"suites/{slug}.html"),
                        "description": Field(suite.description or ""),
                        "tasks": Field(str(len(tasks)), sort=len(tasks)),
                        "checkpoints": Field(", ".join(checkpoint_sets) or "–"),
                        "methods": Field(
                            str(len({c.method for c in cells})), sort=len({c.method for c in cells})
                        ),
                        "runs": Field(str(runs), sort=runs),
                        "best": Field(
                            f"{best.method} {fmt.number(best.stat('average').mean)}"
                            if best
                            else "–",
                            sort=best.stat("average").mean if best else None,
                        ),
                        "published": Field(str(len(suite.published)), sort=len(suite.published)),
                    },
                    data={
                        "suite": suite.name,
                        "description": suite.description,
                        "tasks": len(tasks),
                        "checkpoint_sets": ";".join(checkpoint_sets),
                        "methods": len({c.method for c in cells}),
                        "runs": runs,
                        "best_method": best.method if best else None,
                        "best_average": best.stat("average").mean if best else None,
                        "published_numbers": len(suite.published),
                        "registered": suite.registered,
                    },
                )
            )
        methods = Table(
            id="methods",
            title="Methods",
            columns=[
                Column("method", "method"),
                Column("family", "family"),
                Column("suites", "suites with results"),
                Column("runs", "runs", numeric=True),
                Column("paper", "paper"),
            ],
            download_stem="data/methods",
            filterable=True,
        )
        for name, info in sorted(self.methods.items()):
            cells = [c for c in self.cells if c.method == name]
            family = info.family or (cells[0].family if cells else "")
            suites_here = sorted({c.suite for c in cells})
            runs = sum(len(c.runs) for c in cells)
            url = safe_url(info.reference)
            methods.rows.append(
                Row(
                    cells={
                        "method": Field(name, sort=name.lower(), href=self.method_pages[name]),
                        "family": Field(family),
                        "suites": Field(
                            "" if suites_here else "–",
                            sort=", ".join(suites_here),
                            links=[(s, f"suites/{self.suite_pages[s]}.html") for s in suites_here],
                        ),
                        "runs": Field(str(runs), sort=runs),
                        "paper": Field(info.reference or "–", href=url),
                    },
                    data={
                        "method": name,
                        "family": family,
                        "suites": ";".join(suites_here),
                        "runs": runs,
                        "reference": info.reference,
                        "registered": info.registered,
                    },
                    family=family,
                    search=f"{name} {family}",
                )
            )
        all_runs = Table(
            id="runs",
            title="All runs",
            columns=[
                Column("run", "run"),
                Column("suite", "suite"),
                Column("method", "method"),
                Column("seed", "seed", numeric=True),
                Column("average", "average", numeric=True),
                Column("created", "created"),
            ],
            download_stem="data/runs",
        )
        for run in sorted(self.runs, key=lambda r: str(r.path)):
            record = run.record
            all_runs.rows.append(
                Row(
                    cells={
                        "run": Field(record["run_id"], href=f"runs/{run.page}"),
                        "suite": Field(record["suite"]["name"]),
                        "method": Field(record["method"]["name"]),
                        "seed": Field(str(record["seed"]), sort=record["seed"]),
                        "average": Field(fmt.number(record["average"]), sort=record["average"]),
                        "created": Field(record["created"]),
                    },
                    data=_flat_run(record),
                )
            )
        self.site.tables += [suites, methods, all_runs]
        self.site.pages.append(
            Page(
                "index.html",
                "index.html",
                {
                    "title": "Leaderboard — merging harness",
                    "suites": suites,
                    "methods": methods,
                    "runs": all_runs,
                    "problems": self.problems,
                },
            )
        )


def _flat_run(record: dict[str, Any]) -> dict[str, Any]:
    """One run as a flat row: the identity, every metric and every cost."""
    suite, timings, memory = record["suite"], record["timings"], record["peak_memory"]
    row: dict[str, Any] = {
        "run_id": record["run_id"],
        "created": record["created"],
        "suite": suite["name"],
        "checkpoint_set": suite["checkpoint_set"],
        "method": record["method"]["name"],
        "family": record["method"]["family"],
        "seed": record["seed"],
        "selection": record["selection"]["strategy"],
        "hyperparameters": json.dumps(record["hyperparameters"], sort_keys=True, default=str),
        "average": record["average"],
        "normalized_average": record["normalized_average"],
    }
    row.update({f"task:{t}": entry["metric"] for t, entry in record["tasks"].items()})
    row.update({f"{k}": v for k, v in timings.items()})
    row.update(
        {
            "cpu_rss_bytes": memory.get("cpu_rss_bytes"),
            "cuda_bytes": memory.get("cuda_bytes"),
            "extra_parameters": record["extra_parameters"],
            "device": record["environment"]["device"],
            "git_commit": record["environment"].get("git_commit"),
            "command": record["command"],
        }
    )
    return row
