"""Routing pages: per outcome-table suite, every router's quality–cost curve on one plot,
the single models as points, merges where the suite has them, and a metrics table.

A router's record keeps its λ sweep (``suite.summary.curve``) and the single models'
points (``suite.summary.models``); a cell's curve is that of its first run (runs differ
only by seed) and its numbers are means over runs. Quality on these pages is pooled over
all test queries (the summary's accuracy), not the mean over tasks. A suite built from a
weight suite's experts (``OutcomeSuite.merge_suite``: mini8-outcomes from mini8) also
shows that suite's merges, each one model, at one model's cost, the task-id oracle
(``individual``: the task's own expert) there too, and per-sample routers among the
experts at the models they run per input, each with its accuracy pooled over the same
test items (per-task accuracy weighted by the task's size). A second plot puts the same
records at what they store (one model plus their ``extra_parameters``) beside the single
models, so a router that keeps every expert and a merge that keeps one are compared on
storage as well as on compute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leaderboard import format as fmt
from leaderboard.cells import Cell
from leaderboard.pages.base import Page, PageKind, Site, cell_label
from leaderboard.plot import Curve, Point, curves

PAGE_ROOT = "../"
METRICS = (
    ("accuracy", "quality (%)", "Pooled over every test query, at the router's own λ."),
    ("cost", "cost / query", "Mean cost per test query at the router's own λ."),
    (
        "aiq",
        "AIQ",
        "RouterBench: mean quality under the curve's non-decreasing convex hull, "
        "over the single models' cost range.",
    ),
    ("apgr", "APGR", "RouteLLM: mean share of the weak→strong gap recovered over cost."),
    ("cpt50", "CPT(50%)", "Cost (% of the weak→strong span) needed to recover half the gap."),
    ("cpt80", "CPT(80%)", "The same for 80% of the gap."),
)


def number(key: str, value: float | None) -> str:
    """Costs to 4 significant digits (dollars to parameters), APGR to 3 decimals."""
    if key == "cost" and value is not None:
        return f"{value:.4g}"
    return fmt.number(value, 3 if key == "apgr" else 2)


def routing_page(suite_slug: str) -> str:
    return f"routing/{suite_slug}.html"


def summary_of(cell: Cell) -> dict[str, Any] | None:
    """The first run's routing summary, or None when the cell holds no router record."""
    for run in cell.runs:
        summary = run.record.get("suite", {}).get("summary") or {}
        if "curve" in summary and "models" in summary:
            return summary
    return None


def routing_cells(cells: list[Cell]) -> list[Cell]:
    return [c for c in cells if c.family == "routing" and summary_of(c) is not None]


def mean_metric(cell: Cell, key: str) -> float | None:
    values = [
        run.record["suite"]["summary"][key]
        for run in cell.runs
        if isinstance((run.record.get("suite", {}).get("summary") or {}).get(key), int | float)
    ]
    return float(np.mean(values)) if values else None


def merge_suite_of(suite: str) -> str | None:
    from harness.registry import SUITES

    try:
        return getattr(SUITES.get(suite).obj, "merge_suite", None)
    except Exception:  # a suite only known from records
        return None


def weight_models_per_query(cell: Cell) -> float | None:
    """How many models' passes a weight-suite record costs per input: 1 for a merge and
    for ``individual`` (the task-id oracle: one expert, told the task), what a per-sample
    router records (``method_info.models_per_query``), None when unknown."""
    if cell.family == "merging" or cell.method == "individual":
        return 1.0
    value = (cell.runs[0].record.get("method_info") or {}).get("models_per_query")
    return float(value) if isinstance(value, int | float) else None


#: Weight-suite methods whose backbone is chosen by the task id (told the task): the
#: task-id oracle and the task-specific masks/rescalers of EMR-Merging and TALL masks.
TOLD_TASK = frozenset({"individual", "emr", "tall_masks"})


def pooled_accuracy(cell: Cell, tasks: dict[str, int]) -> float | None:
    """Per-task accuracy weighted by the outcome table's test sizes (first run)."""
    record = cell.runs[0].record
    scored = record.get("tasks", {})
    if not tasks or any(task not in scored for task in tasks):
        return None
    total = sum(tasks.values())
    return sum(scored[task]["metric"] * n for task, n in tasks.items()) / total


def distinct_label(cell: Cell, cells: list[Cell]) -> str:
    """The method name, with the hyperparameters that tell its cells apart when the
    method has several here (e.g. ``wemoe (steps=0)`` beside ``wemoe (steps=200)``)."""
    same = [c for c in cells if c.method == cell.method]
    if len(same) == 1:
        return cell.method

    def settings(c: Cell) -> dict[str, Any]:
        return c.runs[0].record.get("hyperparameters") or {}

    values = settings(cell)
    differing = [key for key in values if any(settings(o).get(key) != values[key] for o in same)]
    if not differing:
        return cell_label(cell, cells)
    return f"{cell.method} ({', '.join(f'{key}={values[key]}' for key in differing)})"


class RoutingPages(PageKind):
    """``routing/<suite>.html`` for every suite with router records over an outcome table."""

    def add_to(self, site: Site) -> None:
        for name in sorted(self.data.suites):
            cells = routing_cells(self.data.suite_cells[name])
            if not cells:
                continue
            slug = self.data.suite_slugs[name]
            site.pages.append(Page(routing_page(slug), "routing.html", self.context(name, cells)))

    def context(self, name: str, cells: list[Cell]) -> dict[str, Any]:
        first = summary_of(cells[0]) or {}
        unit = first.get("cost_unit", "cost")
        models = [
            Point(label=m["model"], cost=m["cost"], accuracy=m["accuracy"])
            for m in first.get("models", [])
        ]
        lines = [
            Curve(
                label=cell_label(c, cells),
                points=tuple((p["cost"], p["accuracy"]) for p in summary_of(c)["curve"]),
                href=PAGE_ROOT + self.data.method_pages[c.method],
            )
            for c in cells
        ]
        records = self.merge_records(name, cells[0], models)
        merges = [record["point"] for record in records]
        svg = curves(
            lines,
            title=f"{name}: quality against {unit}",
            cost_label=unit,
            cost_format=lambda v: f"{v:.3g}",
            models=models,
            merges=merges,
        )
        stored_svg = (
            curves(
                [],
                title=f"{name}: quality against stored parameters",
                cost_label="parameters stored (one model + extra)",
                cost_format=lambda v: f"{v:.3g}",
                models=models,
                merges=[
                    Point(
                        label=r["point"].label,
                        cost=r["stored"],
                        accuracy=r["point"].accuracy,
                        href=r["point"].href,
                        detail=r["point"].detail,
                    )
                    for r in records
                ],
            )
            if records
            else None
        )
        rows = []
        for cell in cells:
            values = {key: mean_metric(cell, key) for key, _, _ in METRICS}
            rows.append(
                {
                    "label": cell_label(cell, cells),
                    "href": PAGE_ROOT + self.data.method_pages[cell.method],
                    "runs": len(cell.runs),
                    "numbers": [number(key, values[key]) for key, _, _ in METRICS],
                    "sort": values["aiq"] if values["aiq"] is not None else -1.0,
                }
            )
        rows.sort(key=lambda r: -r["sort"])
        return {
            "title": f"{name} — routing",
            "suite_name": name,
            "suite_page": PAGE_ROOT + self.data.suite_page(name),
            "svg": svg,
            "metrics": METRICS,
            "rows": rows,
            "models": [
                {"name": m.label, "cost": f"{m.cost:.4g}", "accuracy": fmt.number(m.accuracy)}
                for m in models
            ],
            "oracle": fmt.number(first.get("oracle_accuracy")),
            "weak": first.get("weak", ""),
            "strong": first.get("strong", ""),
            "merges": [
                {
                    "name": r["point"].label,
                    "href": r["point"].href,
                    "family": r["family"],
                    "told_task": "yes" if r["told_task"] else "no",
                    "cost": f"{r['point'].cost:.4g}",
                    "extra": f"{r['extra']:,}",
                    "accuracy": fmt.number(r["point"].accuracy),
                }
                for r in sorted(records, key=lambda r: -r["point"].accuracy)
            ],
            "stored_svg": stored_svg,
            "merge_suite": merge_suite_of(name),
            "unit": unit,
        }

    def merge_records(self, name: str, cell: Cell, models: list[Point]) -> list[dict[str, Any]]:
        """The merge suite's records on the same test items: each a point at the models it
        runs per input, with its family, whether it is told the task id, what it stores
        beyond one model and what it stores in all (one model's cost + extra)."""
        source = merge_suite_of(name)
        if not source or source not in self.data.suite_cells or not models:
            return []
        sizes = {task: n["n"] for task, n in (summary_of(cell) or {}).get("per_task", {}).items()}
        base_set = cell.checkpoint_set.split("/outcomes")[0]
        records = []
        one_model = min(m.cost for m in models)
        same_set = [c for c in self.data.suite_cells[source] if c.checkpoint_set == base_set]
        for merge in same_set:
            models_per_query = weight_models_per_query(merge)
            if models_per_query is None:
                continue
            accuracy = pooled_accuracy(merge, sizes)
            if accuracy is None:
                continue
            extra = int(merge.runs[0].record.get("extra_parameters") or 0)
            point = Point(
                label=distinct_label(merge, same_set),
                cost=one_model * models_per_query,
                accuracy=accuracy,
                href=PAGE_ROOT + self.data.method_pages[merge.method],
                detail=f"{source} record, {len(merge.runs)} run(s), {extra:,} extra parameters",
            )
            records.append(
                {
                    "point": point,
                    "family": merge.family,
                    "told_task": merge.method in TOLD_TASK,
                    "extra": extra,
                    "stored": one_model + extra,
                }
            )
        return records
