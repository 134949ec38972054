"""Distillation pages: where the extra compute of training a student pays, one per suite.

For every suite with distillation runs, ``distillation/<suite>.html`` shows budget
curves (normalised accuracy against distillation seconds and against steps, one curve
per method and setting, its budgets joined in order) with the data-free merges of the
same suite on the same axes (points at their merge seconds; dashed lines on the steps
axis, where they have no budget), and a table of normalised accuracy (mean and worst
task), compute (steps, examples seen by student and teachers, seconds) and inference
cost (models kept at inference) for students, merges and baselines. A closing sentence
says at which budget the best student first beats the best data-free merge, or that no
budget run does.

Normalised accuracy is each task's score relative to its own expert (the teacher), the
record's ``tasks.<t>.normalized``; "worst" is the lowest task's mean over runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.registry import METHODS
from leaderboard import format as fmt
from leaderboard.catalog import SuiteInfo
from leaderboard.cells import Cell
from leaderboard.curves import Series, curves
from leaderboard.pages.base import Page, PageKind, Site, runs_field, whole_suite
from leaderboard.plot import Point, Reference
from leaderboard.tables import Column, Field, Row, Table

FAMILY = "distillation"
PAGE_ROOT = "../"  # the pages live one folder below the site root


def distillation_page(suite_slug: str) -> str:
    return f"distillation/{suite_slug}.html"


def is_data_free_merge(cell: Cell) -> bool:
    """A merge that reads no data (the baseline distillation must beat to pay)."""
    if cell.family != "merging":
        return False
    return cell.method in METHODS.names() and not METHODS.get(cell.method).needs


@dataclass
class Summary:
    """One cell's distillation-page numbers, means over its runs."""

    cell: Cell
    normalised: dict[str, float]  # task -> mean normalised accuracy
    steps: float | None
    examples_seen: float | None
    teacher_examples: float | None
    seconds: float | None
    cpu_s: float | None
    inference_models: int | None

    @property
    def mean(self) -> float | None:
        return self.cell.stat("normalized_average").mean

    @property
    def worst(self) -> tuple[str, float] | None:
        if not self.normalised:
            return None
        task = min(self.normalised, key=self.normalised.__getitem__)
        return task, self.normalised[task]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(cell: Cell, tasks: int) -> Summary:
    per_task: dict[str, list[float]] = defaultdict(list)
    costs: dict[str, list[float]] = defaultdict(list)
    for run in cell.runs:
        record = run.record
        for task, entry in record["tasks"].items():
            if entry.get("normalized") is not None:
                per_task[task].append(float(entry["normalized"]))
        info = (record.get("method_info") or {}).get("distillation") or {}
        for key in ("examples_seen", "teacher_forward_examples", "cpu_s"):
            if isinstance(info.get(key), int | float):
                costs[key].append(float(info[key]))
        steps = record["hyperparameters"].get("steps")
        if cell.family == FAMILY and isinstance(steps, int | float):
            costs["steps"].append(float(steps))
    models = {"baseline": None, "merging": 1, FAMILY: 1}.get(cell.family)
    if cell.method in ("individual", "ensemble"):
        models = tasks
    elif cell.method == "pretrained":
        models = 1
    declared = [(run.record.get("method_info") or {}).get("inference_models") for run in cell.runs]
    if declared and isinstance(declared[0], int):  # what the method says it keeps (logit fusion)
        models = declared[0]
    return Summary(
        cell,
        {task: sum(v) / len(v) for task, v in per_task.items()},
        _mean(costs["steps"]),
        _mean(costs["examples_seen"]),
        _mean(costs["teacher_forward_examples"]),
        cell.stat("merge_s").mean,
        _mean(costs["cpu_s"]),
        models,
    )


def series_key(cell: Cell) -> str:
    """A distillation cell's curve: its method and fixed values other than the budget."""
    fixed = {k: v for k, v in _fixed(cell).items() if k != "steps"}
    return json.dumps([cell.method, fixed], sort_keys=True, default=str)


def _fixed(cell: Cell) -> dict[str, Any]:
    record = cell.runs[0].record
    return {k: record["hyperparameters"].get(k) for k in record["selection"].get("fixed", [])}


def series_labels(cells: list[Cell]) -> dict[str, str]:
    """Curve labels: the method, plus the hyperparameters (other than the budget) whose
    values differ between that method's curves."""
    keys = {series_key(c): c for c in cells}
    labels = {}
    for method in {c.method for c in keys.values()}:
        mine = {k: c for k, c in keys.items() if c.method == method}
        used = {k: c.runs[0].record["hyperparameters"] for k, c in mine.items()}
        names = sorted({n for values in used.values() for n in values} - {"steps"})
        varying = [
            n for n in names if len({json.dumps(v.get(n), default=str) for v in used.values()}) > 1
        ]
        for key, values in used.items():
            extra = ", ".join(f"{n}={values.get(n)}" for n in varying)
            labels[key] = f"{method} ({extra})" if extra else method
    return labels


def crossover(students: list[Summary], merges: list[Summary]) -> dict[str, Any] | None:
    """The best data-free merge, and the cheapest student (fewest seconds) that beats it."""
    merges = [m for m in merges if m.mean is not None]
    if not merges:
        return None
    best = max(merges, key=lambda m: m.mean)
    beating = [s for s in students if s.mean is not None and s.mean > best.mean]
    first = min(beating, key=lambda s: (s.seconds or 0.0, s.steps or 0.0), default=None)
    top = max((s for s in students if s.mean is not None), key=lambda s: s.mean, default=None)
    labels = series_labels([s.cell for s in students])
    return {
        "merge": best,
        "first": first,
        "first_label": labels[series_key(first.cell)] if first else None,
        "best_student": top,
        "best_label": labels[series_key(top.cell)] if top else None,
    }


def setting_text(cell: Cell) -> str:
    """Short: a student's values fixed with --set other than the budget's steps (its own
    column); a merge's chosen values. The full list is the cell's tooltip and download."""
    if cell.family != FAMILY:
        return cell.chosen
    fixed = {k: v for k, v in _fixed(cell).items() if k != "steps"}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(fixed.items()))
    return f"{shown} (others paper defaults)" if shown else "paper defaults"


class DistillationPages(PageKind):
    """``distillation/<suite>.html`` for every suite with distillation runs."""

    def add_to(self, site: Site) -> None:
        for name in sorted(self.data.suites):
            suite, slug = self.data.suites[name], self.data.suite_slugs[name]
            whole = [c for c in whole_suite(suite, self.data.suite_cells[name]) if c.runs]
            students = [c for c in whole if c.family == FAMILY]
            if not students:
                continue
            merges = [c for c in whole if is_data_free_merge(c)]
            baselines = [c for c in whole if c.family == "baseline"]
            tasks = len(students[0].tasks)
            summaries = {id(c): summarise(c, tasks) for c in students + merges + baselines}
            table = self.table(suite, slug, students + merges + baselines, summaries)
            site.tables.append(table)
            trained = [summaries[id(c)] for c in students if summaries[id(c)].steps is not None]
            # inference-time references of the family (no budget) are drawn, not "students"
            found = crossover(trained, [summaries[id(c)] for c in merges])
            site.pages.append(
                Page(
                    distillation_page(slug),
                    "distillation.html",
                    {
                        "title": f"{name} — distillation",
                        "suite": suite,
                        "suite_page": self.data.suite_page(name),
                        "plots": self.plots(students, merges, baselines, summaries),
                        "table": table,
                        "crossover": found,
                        "method_pages": self.data.method_pages,
                    },
                )
            )

    def plots(
        self,
        students: list[Cell],
        merges: list[Cell],
        baselines: list[Cell],
        summaries: dict[int, Summary],
    ) -> list[dict[str, Any]]:
        labels = series_labels(students)
        grouped: dict[str, list[Summary]] = defaultdict(list)
        for cell in students:
            grouped[series_key(cell)].append(summaries[id(cell)])
        references = [
            Reference(c.method, summaries[id(c)].mean, PAGE_ROOT + self.data.method_pages[c.method])
            for c in baselines
            if summaries[id(c)].mean is not None
        ]
        merge_lines = [
            Reference(c.method, summaries[id(c)].mean) for c in merges if summaries[id(c)].mean
        ]
        plots = []
        for measure, label, fmt_x, meaning in (
            (
                "seconds",
                "distillation seconds",
                lambda v: fmt.tick(v, "s", False),
                "Wall-clock seconds of the method step (timings.method_s): for a student, "
                "building its init, the teachers' pass and training; for a merge, merging. "
                "Data-free merges are the square points.",
            ),
            (
                "steps",
                "distillation steps",
                fmt.tick,
                "Optimisation steps of the budget (each step: one batch of every task). "
                "Data-free merges have no steps: dashed lines at their accuracy.",
            ),
        ):
            series = [
                Series(
                    labels[key],
                    tuple(
                        (getattr(s, measure), s.mean)
                        for s in group
                        if getattr(s, measure) is not None and s.mean is not None
                    ),
                    PAGE_ROOT + self.data.method_pages[group[0].cell.method],
                )
                for key, group in grouped.items()
            ]
            on_axis = measure == "seconds"
            points = [
                Point(
                    c.method,
                    summaries[id(c)].seconds,
                    summaries[id(c)].mean,
                    PAGE_ROOT + self.data.method_pages[c.method],
                )
                for c in merges
                if on_axis and summaries[id(c)].seconds is not None and summaries[id(c)].mean
            ]
            svg = curves(
                series,
                title=f"normalised accuracy vs {label}",
                x_label=label,
                x_format=fmt_x,
                points=points,
                references=references + ([] if on_axis else merge_lines),
            )
            plots.append({"measure": measure, "label": label, "meaning": meaning, "svg": svg})
        return plots

    def table(
        self, suite: SuiteInfo, slug: str, cells: list[Cell], summaries: dict[int, Summary]
    ) -> Table:
        columns = [
            Column("method", "method", sticky=True),
            Column("family", "family"),
            Column("setting", "setting", title="hyperparameters and how they were chosen"),
            Column("normalised", "normalised mean", numeric=True, title="% of each teacher"),
            Column("worst", "worst task", numeric=True, title="lowest task, % of its teacher"),
            Column("steps", "steps", numeric=True),
            Column("examples", "examples seen", numeric=True, title="by the student"),
            Column("teacher", "teacher passes", numeric=True, title="inputs run by teachers"),
            Column("seconds", "seconds", numeric=True, title="method step, wall clock"),
            Column("cpu", "CPU s", numeric=True, title="process CPU seconds of the training"),
            Column("models", "models at inference", numeric=True),
            Column("runs", "runs", numeric=True),
        ]
        rows = []
        ordered = sorted(cells, key=lambda c: -(summaries[id(c)].mean or -1.0))
        for cell in ordered:
            s = summaries[id(cell)]
            worst = s.worst
            page = self.data.method_pages[cell.method]
            rows.append(
                Row(
                    cells={
                        "method": Field(cell.method, href=page),
                        "family": Field(cell.family),
                        "setting": Field(setting_text(cell), title=cell.chosen),
                        "normalised": Field(fmt.number(s.mean), sort=s.mean),
                        "worst": Field(
                            fmt.number(worst[1]) if worst else "–",
                            sort=worst[1] if worst else None,
                            detail=worst[0] if worst else "",
                        ),
                        "steps": Field(fmt.count(s.steps), sort=s.steps),
                        "examples": Field(fmt.count(s.examples_seen), sort=s.examples_seen),
                        "teacher": Field(fmt.count(s.teacher_examples), sort=s.teacher_examples),
                        "seconds": Field(fmt.seconds(s.seconds), sort=s.seconds),
                        "cpu": Field(fmt.seconds(s.cpu_s), sort=s.cpu_s),
                        "models": Field(fmt.count(s.inference_models), sort=s.inference_models),
                        "runs": runs_field(cell),
                    },
                    data={
                        "method": cell.method,
                        "family": cell.family,
                        "setting": cell.chosen,
                        "normalized_mean": s.mean,
                        "worst_task": worst[0] if worst else None,
                        "worst_normalized": worst[1] if worst else None,
                        "steps": s.steps,
                        "examples_seen": s.examples_seen,
                        "teacher_forward_examples": s.teacher_examples,
                        "seconds": s.seconds,
                        "cpu_s": s.cpu_s,
                        "inference_models": s.inference_models,
                        "runs": len(cell.runs),
                        **{f"normalized:{t}": v for t, v in s.normalised.items()},
                    },
                    family=cell.family,
                    search=f"{cell.method} {cell.chosen}",
                )
            )
        return Table(
            id="distillation",
            title="Students, merges and baselines",
            columns=columns,
            rows=rows,
            download_stem=f"data/distillation-{slug}",
            filterable=True,
            note="Normalised accuracy: each task's score as % of its own expert (the "
            "teacher); worst: the lowest task. Seconds: the method step on the machine "
            "that ran it. Models at inference: a student or a merge is one model; the "
            "experts and their ensemble keep one per task.",
        )
