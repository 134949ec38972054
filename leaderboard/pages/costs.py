"""Cost pages: accuracy against what each method itself costs, one page per suite.

Baselines that merge nothing (family ``baseline``: the pretrained model, the individual
experts, their output ensemble) cost no merge time and would own every Pareto front, so
they are drawn as reference lines at their accuracy, not as points. Merge time is the
method step plus building per-task models (``timings.method_s + timings.per_task_s``):
lazy per-task methods (TALL masks, EMR) do their work there. Memory is the method's own
peak above what was resident (``peak_memory.method_mib``) when every plotted cell records it; older
records only have the process peak, which counts the loaded models and data and is
about the same for every method, and the page says which of the two is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leaderboard import format as fmt
from leaderboard.catalog import SuiteInfo
from leaderboard.cells import Cell
from leaderboard.pages.base import Page, PageKind, Site, SiteData, cell_label, whole_suite
from leaderboard.plot import Point, Reference, scatter

REFERENCE_FAMILY = "baseline"  # merges nothing: a reference line, never a Pareto point

# Cost pages live one folder below the root; the SVG links are written as they are.
PAGE_ROOT = "../"


@dataclass(frozen=True)
class CostAxis:
    key: str  # the suite table's ``pareto_<key>`` column
    measure: str  # the cell statistic plotted
    label: str
    meaning: str  # what the axis measures, shown under the plot
    value_format: Callable[[Any], str]
    tick_format: Callable[[float], str]
    whole: bool  # integer-valued (parameters, bytes): no ticks below 1


MERGE_TIME = CostAxis(
    "method_s",
    "merge_s",
    "merge time",
    "Wall-clock seconds of the method's own work: its step (timings.method_s) plus "
    "building its per-task models where it keeps something per task "
    "(timings.per_task_s); loading the experts and scoring are not counted.",
    fmt.seconds,
    lambda v: fmt.tick(v, "s", False),
    False,
)
EXTRA_PARAMETERS = CostAxis(
    "extra_parameters",
    "extra_parameters",
    "extra stored parameters",
    "What the method stores beyond one model (masks, rescalers, routers, per-task "
    "vectors), in 32-bit parameter equivalents; 0 for a single merged model.",
    fmt.count,
    fmt.tick,
    True,
)
METHOD_MEMORY = CostAxis(
    "memory",
    "method_memory_bytes",
    "method peak memory",
    "The method's own peak memory above what was already resident: its step, or "
    "building one task's model where that is larger (peak_memory.method_mib).",
    fmt.memory,
    lambda v: fmt.tick(v, "B"),
    True,
)
PROCESS_MEMORY = CostAxis(
    "memory",
    "peak_memory_bytes",
    "process peak memory",
    "Shown instead of the method's own memory because some runs here do not record "
    "peak_memory.method_mib: the whole process's peak (GPU if used, else CPU RSS), which "
    "includes the loaded experts and data and differs little between methods.",
    fmt.memory,
    lambda v: fmt.tick(v, "B"),
    True,
)


def is_reference(cell: Cell) -> bool:
    return cell.family == REFERENCE_FAMILY


def memory_axis(cells: list[Cell]) -> CostAxis:
    """The method's own memory when every merging cell records it, else the process peak."""
    merging = [c for c in cells if not is_reference(c) and c.stat("average").mean is not None]
    if merging and all(c.stat("method_memory_bytes").mean is not None for c in merging):
        return METHOD_MEMORY
    return PROCESS_MEMORY


def cost_axes(cells: list[Cell]) -> list[CostAxis]:
    return [MERGE_TIME, EXTRA_PARAMETERS, memory_axis(cells)]


def cost_plots(
    data: SiteData, suite: SuiteInfo, cells: list[Cell]
) -> tuple[list[dict[str, Any]], dict[str, list[bool]]]:
    """One plot per cost axis, and per axis key whether each of ``cells`` is on its front."""
    plots, fronts = [], {}
    whole = [c for c in whole_suite(suite, cells) if c.stat("average").mean is not None]
    references = [
        Reference(
            label=cell_label(c, cells),
            accuracy=c.stat("average").mean,
            href=PAGE_ROOT + data.method_pages[c.method],
        )
        for c in whole
        if is_reference(c)
    ]
    for axis in cost_axes(cells):
        usable = [c for c in whole if not is_reference(c) and c.stat(axis.measure).mean is not None]
        points = [
            Point(
                label=cell_label(c, cells),
                cost=c.stat(axis.measure).mean,
                accuracy=c.stat("average").mean,
                href=PAGE_ROOT + data.method_pages[c.method],
                detail=f"{c.chosen}; checkpoints {c.checkpoint_set}; n={len(c.runs)}",
            )
            for c in usable
        ]
        svg, front = scatter(
            points,
            title=f"average vs {axis.label}",
            cost_label=axis.label,
            cost_format=axis.value_format,
            tick_format=axis.tick_format,
            whole_costs=axis.whole,
            references=references,
        )
        plots.append(
            {"measure": axis.measure, "label": axis.label, "meaning": axis.meaning, "svg": svg}
        )
        on_front = {id(c): keep for c, keep in zip(usable, front)}
        fronts[axis.key] = [on_front.get(id(c), False) for c in cells]
    return plots, fronts


def cost_page(suite_slug: str) -> str:
    return f"costs/{suite_slug}.html"


class CostPages(PageKind):
    """``costs/<suite>.html``: accuracy against merge time, stored parameters and memory."""

    def add_to(self, site: Site) -> None:
        for name in sorted(self.data.suites):
            suite, slug = self.data.suites[name], self.data.suite_slugs[name]
            cells = self.data.suite_cells[name]
            plots, _ = cost_plots(self.data, suite, cells)
            references = [c for c in whole_suite(suite, cells) if is_reference(c) and c.runs]
            site.pages.append(
                Page(
                    cost_page(slug),
                    "costs.html",
                    {
                        "title": f"{name} — cost",
                        "suite": suite,
                        "suite_page": self.data.suite_page(name),
                        "plots": plots,
                        "references": sorted({c.method for c in references}),
                        "run_count": sum(len(c.runs) for c in cells),
                    },
                )
            )
