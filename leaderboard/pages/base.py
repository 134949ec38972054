"""What every page kind shares: the site model and the facts computed once from the records.

Pages are addressed by paths relative to the site root (``suites/mini8.html``); the
templates prefix them with the way back to the root, so the site works from ``file://``
and from any sub-folder of a static host.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.suite import Published
from leaderboard import format as fmt
from leaderboard.catalog import (
    MethodInfo,
    SuiteInfo,
    method_from_record,
    registered_methods,
    registered_suites,
    safe_url,
    suite_from_record,
)
from leaderboard.cells import Cell, Run, Stat, group_runs
from leaderboard.names import UniqueNames
from leaderboard.tables import Field, Table


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
    #: pages of one view each (judges, cross capabilities, a family's curves) that the
    #: index lists: (title, path, what it shows)
    views: list[tuple[str, str, str]] = field(default_factory=list)


class SiteData:
    """Records, registry metadata and page addresses, computed once for every page kind."""

    def __init__(
        self,
        runs: list[Run],
        problems: list[str],
        judge_results: list[dict[str, Any]] | None = None,
        mergeability_results: list[dict[str, Any]] | None = None,
    ) -> None:
        self.runs = runs
        self.problems = problems
        self.judge_results = list(judge_results or [])  # ``harness judge meta`` results
        # ``harness transfer mergeability`` results, one per suite
        self.mergeability_results = list(mergeability_results or [])
        self.methods: dict[str, MethodInfo] = registered_methods()
        self.suites: dict[str, SuiteInfo] = registered_suites()
        for run in runs:
            self.methods.setdefault(run.record["method"]["name"], method_from_record(run.record))
            self.suites.setdefault(run.record["suite"]["name"], suite_from_record(run.record))
        names = UniqueNames()
        self.method_pages = {name: f"methods/{names.take(name)}.html" for name in self.methods}
        names = UniqueNames()
        self.suite_slugs = {name: names.take(name) for name in sorted(self.suites)}
        names = UniqueNames()
        for run in sorted(runs, key=lambda r: str(r.path)):
            run.page = f"{names.take(run.record['run_id'])}.html"
        self.cells = group_runs(runs)
        by_suite: dict[str, list[Cell]] = defaultdict(list)
        for cell in ranked(self.cells):
            by_suite[cell.suite].append(cell)
        self.suite_cells: dict[str, list[Cell]] = {}
        for name, suite in self.suites.items():
            cells = by_suite.get(name, [])
            whole = whole_suite(suite, cells)
            whole_ids = {id(c) for c in whole}
            self.suite_cells[name] = whole + [c for c in cells if id(c) not in whole_ids]

    def suite_page(self, suite: str) -> str:
        return f"suites/{self.suite_slugs[suite]}.html"


class PageKind:
    """One kind of page (index, suite, method, run, ...): adds its pages and tables."""

    def __init__(self, data: SiteData) -> None:
        self.data = data

    def add_to(self, site: Site) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------- shared cell helpers
def ranked(cells: list[Cell]) -> list[Cell]:
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


def whole_suite(suite: SuiteInfo, cells: list[Cell]) -> list[Cell]:
    """Cells scored on the suite's whole task list: only their averages compare (a run
    on two of eight tasks is not better for having a higher mean over those two)."""
    full = set(suite.tasks) or max((set(c.tasks) for c in cells), key=len, default=set())
    return [c for c in cells if set(c.tasks) == full]


def cell_label(cell: Cell, cells: list[Cell]) -> str:
    """The method name, with the setting when the method has several cells here."""
    same = [c for c in cells if c.method == cell.method]
    return cell.method if len(same) == 1 else f"{cell.method} · {cell.setting}"


def stat_field(stat: Stat, formatter: Callable[[Any], str] = fmt.number) -> Field:
    """``mean ± std`` (std only with two or more runs), sorting by the mean."""
    if stat.mean is None:
        return Field("–")
    text = formatter(stat.mean)
    if stat.n > 1 and stat.std is not None:
        text += f" ± {formatter(stat.std)}"
    return Field(text, sort=stat.mean, title=f"mean over {stat.n} run(s)")


def stat_data(prefix: str, stat: Stat) -> dict[str, Any]:
    return {f"{prefix}_mean": stat.mean, f"{prefix}_std": stat.std, f"{prefix}_n": stat.n}


def runs_field(cell: Cell) -> Field:
    links = [(f"seed {run.record['seed']}", f"runs/{run.page}") for run in cell.runs]
    return Field(str(len(cell.runs)), sort=len(cell.runs), links=links)


def published_index(suite: SuiteInfo) -> dict[tuple[str, str], Published]:
    """The first published number per (method, checkpoint set); all are in the suite's
    published table (a paper may report several variants, e.g. task- and layer-wise)."""
    index: dict[tuple[str, str], Published] = {}
    for published in suite.published:
        index.setdefault((published.method, published.checkpoint_set), published)
    return index


def published_count(suite: SuiteInfo, method: str, checkpoint_set: str) -> int:
    return sum(p.method == method and p.checkpoint_set == checkpoint_set for p in suite.published)


def source_link(source: str) -> str | None:
    return safe_url(source)


def citation(published: Published) -> str:
    """A short, readable name for a published number's source: ``arXiv 2310.02575,
    Table 2`` or the documentation URL; the link itself is :func:`source_link`."""
    source = published.source.strip()
    for prefix in ("https://arxiv.org/abs/", "http://arxiv.org/abs/"):
        if source.startswith(prefix):
            source = "arXiv " + source[len(prefix) :]
    table = published.table
    return f"{source}, {table}" if table else source
