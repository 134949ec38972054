"""Accuracy-versus-cost plots of one suite, and which cells sit on each Pareto front."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leaderboard import format as fmt
from leaderboard.catalog import SuiteInfo
from leaderboard.cells import Cell
from leaderboard.pages.base import SiteData, cell_label, whole_suite
from leaderboard.plot import Point, scatter

# (measure, label, value format, tick format): the cost axes, one accuracy-vs-cost plot each.
COSTS: list[tuple[str, str, Callable[[Any], str], Callable[[float], str]]] = [
    ("method_s", "merge time (method step)", fmt.seconds, lambda v: fmt.tick(v, "s", False)),
    ("extra_parameters", "extra stored parameters", fmt.count, fmt.tick),
    ("peak_memory_bytes", "peak memory", fmt.memory, lambda v: fmt.tick(v, "B")),
]

# Suite pages live one folder below the root; the SVG links are written as they are.
SUITE_PAGE_ROOT = "../"


def cost_plots(
    data: SiteData, suite: SuiteInfo, cells: list[Cell]
) -> tuple[list[dict[str, Any]], dict[str, list[bool]]]:
    """One plot per cost measure, and per measure whether each of ``cells`` is on its front."""
    plots, fronts = [], {}
    whole = {id(c) for c in whole_suite(suite, cells)}
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
                label=cell_label(c, cells),
                cost=c.stat(measure).mean,
                accuracy=c.stat("average").mean,
                href=SUITE_PAGE_ROOT + data.method_pages[c.method],
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
