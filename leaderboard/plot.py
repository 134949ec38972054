"""Accuracy-versus-cost scatter plots, drawn as inline SVG at build time (no JavaScript).

Costs span orders of magnitude (0 extra parameters next to eight copies of a ViT), so the
cost axis is ``log10(1 + cost)``, which keeps zero on the axis. Points on the Pareto
front are filled and joined by a staircase; every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from leaderboard.pareto import pareto_mask

WIDTH, HEIGHT = 620, 360
LABEL_CHAR_WIDTH = 6.5  # px per character of a point label, to keep labels inside the plot
LEGEND_CHARS = 60  # longest name a routing plot's legend prints
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 20, 52


@dataclass(frozen=True)
class Point:
    label: str
    cost: float
    accuracy: float
    href: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Reference:
    """A horizontal line at an accuracy: a baseline that merges nothing (no cost to plot)."""

    label: str
    accuracy: float
    href: str = ""


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _squash(value: float) -> float:
    return math.log10(1.0 + max(value, 0.0))


def tick_values(x_max: float, whole: bool = False) -> list[float]:
    """0 and the 1-2-5 values up to the axis end (in squashed units), smallest first."""
    values = [0.0]
    for exponent in range(0 if whole else -3, 13):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if _squash(value) <= x_max:
                values.append(value)
    return values


def _placed_labels(positions: list[tuple[float, float]]) -> list[float]:
    """Label y positions nudged down so that labels of nearby points do not overlap."""
    placed: list[tuple[float, float]] = []
    result = [0.0] * len(positions)
    for index in sorted(range(len(positions)), key=lambda i: positions[i][1]):
        x, y = positions[index]
        label_y = y + 4
        for other_x, other_y in placed:
            if abs(other_x - x) < 140 and abs(other_y - label_y) < 12:
                label_y = other_y + 12
        placed.append((x, label_y))
        result[index] = label_y
    return result


def frame_and_y_grid(
    plot_w: float, plot_h: float, y_low: float, y_high: float, sy: Callable[[float], float]
) -> list[str]:
    """The plot frame and the horizontal grid lines with their value ticks, as SVG parts
    (every plot on the site shares this axis)."""
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>']
    step = _nice_step(y_high - y_low)
    tick = math.ceil(y_low / step) * step
    while tick <= y_high:
        y = sy(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick:g}</text>'
        )
        tick += step
    return parts


def scatter(
    points: Sequence[Point],
    *,
    title: str,
    cost_label: str,
    cost_format: Callable[[float], str],
    accuracy_label: str = "average (%)",
    tick_format: Callable[[float], str] | None = None,
    whole_costs: bool = False,
    references: Sequence[Reference] = (),
) -> tuple[Markup, list[bool]]:
    """The SVG markup and, per point, whether it is on the Pareto front. ``references``
    are drawn as labelled horizontal lines and take no part in the front."""
    tick_format = tick_format or cost_format
    points = [p for p in points if math.isfinite(p.cost) and math.isfinite(p.accuracy)]
    references = [r for r in references if math.isfinite(r.accuracy)]
    front = pareto_mask([p.cost for p in points], [p.accuracy for p in points])
    parts = [
        f'<svg class="cost-plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
        return Markup("".join(parts) + "</svg>"), front

    x_max = max(_squash(p.cost) for p in points)
    x_max = x_max * 1.05 if x_max > 0 else 1.0
    accuracies = [p.accuracy for p in points] + [r.accuracy for r in references]
    y_low, y_high = min(accuracies), max(accuracies)
    pad = max((y_high - y_low) * 0.1, 1.0)
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(cost: float) -> float:
        return LEFT + plot_w * _squash(cost) / x_max

    def sy(accuracy: float) -> float:
        return TOP + plot_h * (1 - (accuracy - y_low) / (y_high - y_low))

    # axes and grid
    parts += frame_and_y_grid(plot_w, plot_h, y_low, y_high, sy)
    last_x = -1e9
    for value in tick_values(x_max, whole_costs):
        x = sx(value)
        if x - last_x < 48:  # keep tick labels apart
            continue
        last_x = x
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
            f'class="tick">{escape(tick_format(value))}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle" '
        f'class="axis-label">{escape(cost_label)} (log scale) →</text>'
    )
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" class="axis-label" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(accuracy_label)} →</text>'
    )

    # baselines that merge nothing: a dashed line at their accuracy, labelled in the margin
    reference_ys = _placed_labels([(LEFT + plot_w, sy(r.accuracy)) for r in references])
    for reference, label_y in zip(references, reference_ys):
        y = sy(reference.accuracy)
        tooltip = f"{reference.label}: {reference.accuracy:.2f} (reference, not a merge)"
        line = (
            f'<g class="reference" data-method="{escape(reference.label)}">'
            f"<title>{escape(tooltip)}</title>"
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{LEFT + plot_w + 6}" y="{label_y:.1f}" class="reference-label">'
            f"{escape(reference.label[:24])}</text></g>"
        )
        if reference.href:
            line = f'<a href="{escape(reference.href)}">{line}</a>'
        parts.append(line)

    # Pareto staircase: cheapest first, each step waits for the next better point
    on_front = sorted((p for p, keep in zip(points, front) if keep), key=lambda p: p.cost)
    if len(on_front) > 1:
        coords = [(sx(on_front[0].cost), sy(on_front[0].accuracy))]
        for point in on_front[1:]:
            coords.append((sx(point.cost), coords[-1][1]))
            coords.append((sx(point.cost), sy(point.accuracy)))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" class="front"/>')

    label_ys = _placed_labels([(sx(p.cost), sy(p.accuracy)) for p in points])
    for point, keep, label_y in zip(points, front, label_ys):
        x, y = sx(point.cost), sy(point.accuracy)
        css = "point pareto" if keep else "point"
        tooltip = f"{point.label}: {point.accuracy:.2f} at {cost_format(point.cost)}"
        if point.detail:
            tooltip += f" ({point.detail})"
        marker = (
            f'<g class="{css}" data-method="{escape(point.label)}">'
            f"<title>{escape(tooltip)}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5"/>'
            f'<text x="{x + 8:.1f}" y="{label_y:.1f}" class="point-label">'
            f"{escape(point.label[:28])}</text></g>"
        )
        if point.href:
            marker = f'<a href="{escape(point.href)}">{marker}</a>'
        parts.append(marker)
    return Markup("".join(parts) + "</svg>"), front


def lone_in_column(xs: Sequence[float], tolerance: float = 4.0) -> list[bool]:
    """Per x position, whether no other position lies within ``tolerance`` pixels of it."""
    return [sum(abs(x - other) < tolerance for other in xs) == 1 for x in xs]


def short_name(label: str, limit: int) -> str:
    """The last path part of a label (hub ids), cut to ``limit`` characters."""
    return label.rsplit("/", 1)[-1][:limit]


def _marker(kind: str, x: float, y: float) -> str:
    """A grey square for a single model, a diamond for a merge or per-sample method."""
    if kind == "model":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8"/>'
    return (
        f'<polygon points="{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},'
        f'{y + 6:.1f} {x - 6:.1f},{y:.1f}"/>'
    )


def _point_tooltip(kind: str, point: Point, cost_format: Callable[[float], str]) -> str:
    what = "single model" if kind == "model" else "merge or per-sample method"
    tooltip = f"{point.label} ({what}): {point.accuracy:.2f} at {cost_format(point.cost)}"
    return f"{tooltip}; {point.detail}" if point.detail else tooltip


@dataclass(frozen=True)
class Curve:
    """One router's quality–cost curve (its λ sweep), drawn as a line through its points."""

    label: str
    points: tuple[tuple[float, float], ...]  # (cost, quality)
    href: str = ""


#: Distinct line colours for curves, cycled (colour-blind-safe Okabe–Ito order).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


def curves(
    lines: Sequence[Curve],
    *,
    title: str,
    cost_label: str,
    cost_format: Callable[[float], str],
    models: Sequence[Point] = (),
    merges: Sequence[Point] = (),
    accuracy_label: str = "quality (%)",
) -> Markup:
    """Quality against cost on linear axes: each curve a coloured line with its points,
    single models as grey squares, merges as diamonds; a legend on the right. Every
    label is escaped."""
    # the legend's column widens for long names (e.g. one method at several settings)
    longest = max(
        [len(line.label[:LEGEND_CHARS]) for line in lines]
        + [len(short_name(p.label, LEGEND_CHARS)) + 5 for p in (*models, *merges)]
        + [0]
    )
    right = max(270, int(40 + LABEL_CHAR_WIDTH * longest))
    width = 550 + right
    entries = len(lines) + len(models) + len(merges) + 2 * 2
    height = max(420, TOP + 16 + 15 * entries + BOTTOM)
    finite = [
        (c, q) for line in lines for c, q in line.points if math.isfinite(c) and math.isfinite(q)
    ]
    finite += [(p.cost, p.accuracy) for p in (*models, *merges)]
    parts = [
        f'<svg class="cost-plot routing-plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 '
        f'{width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    if not finite:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        return Markup("".join(parts) + "</svg>")
    x_low, x_high = min(c for c, _ in finite), max(c for c, _ in finite)
    x_pad = (x_high - x_low) * 0.05 or max(abs(x_high) * 0.05, 1e-9)
    x_low, x_high = x_low - x_pad, x_high + x_pad
    y_low, y_high = min(q for _, q in finite), max(q for _, q in finite)
    y_pad = max((y_high - y_low) * 0.08, 1.0)
    y_low, y_high = y_low - y_pad, y_high + y_pad
    plot_w, plot_h = width - LEFT - right, height - TOP - BOTTOM

    def sx(cost: float) -> float:
        return LEFT + plot_w * (cost - x_low) / (x_high - x_low)

    def sy(value: float) -> float:
        return TOP + plot_h * (1 - (value - y_low) / (y_high - y_low))

    parts += frame_and_y_grid(plot_w, plot_h, y_low, y_high, sy)
    step = _nice_step(x_high - x_low)
    tick = math.ceil(x_low / step) * step
    while tick <= x_high:
        x = sx(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>'
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" class="tick">'
            f"{escape(cost_format(tick))}</text>"
        )
        tick += step
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{height - 10}" text-anchor="middle" '
        f'class="axis-label">{escape(cost_label)} →</text>'
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" class="axis-label" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(accuracy_label)} →</text>'
    )
    legend_x, legend_y = LEFT + plot_w + 14, TOP + 8
    for index, line in enumerate(lines):
        colour = PALETTE[index % len(PALETTE)]
        dash = ' stroke-dasharray="6 3"' if index >= len(PALETTE) else ""
        points = sorted(p for p in line.points if math.isfinite(p[0]) and math.isfinite(p[1]))
        coords = " ".join(f"{sx(c):.1f},{sy(q):.1f}" for c, q in points)
        dots = "".join(
            f'<circle cx="{sx(c):.1f}" cy="{sy(q):.1f}" r="3" fill="{colour}"/>' for c, q in points
        )
        tooltip = f"{line.label}: {len(points)} points of its λ sweep"
        group = (
            f'<g class="curve" data-method="{escape(line.label)}"><title>{escape(tooltip)}</title>'
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
            f"{dots}"
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="3"{dash}/>'
            f'<text x="{legend_x + 24}" y="{legend_y}" class="point-label">'
            f"{escape(line.label[:LEGEND_CHARS])}</text></g>"
        )
        if line.href:
            group = f'<a href="{escape(line.href)}">{group}</a>'
        parts.append(group)
        legend_y += 15
    # Single models and merges: a marker each and a legend entry each; a text label beside
    # the marker only where no other marker shares its cost column (many candidates of one
    # size would otherwise print their names on top of each other).
    shown = [("model", p) for p in models] + [("merge", p) for p in merges]
    alone = lone_in_column([sx(p.cost) for _, p in shown])
    label_ys = _placed_labels([(sx(p.cost), sy(p.accuracy)) for _, p in shown])
    for (kind, point), solo, label_y in zip(shown, alone, label_ys):
        x, y = sx(point.cost), sy(point.accuracy)
        tooltip = _point_tooltip(kind, point, cost_format)
        name = short_name(point.label, 22)
        # near the right edge the label goes left of its marker, clear of the legend
        left = x + 8 + LABEL_CHAR_WIDTH * len(name) > LEFT + plot_w
        anchor = f'x="{x - 8:.1f}" text-anchor="end"' if left else f'x="{x + 8:.1f}"'
        text = (
            f'<text {anchor} y="{label_y:.1f}" class="point-label">{escape(name)}</text>'
            if solo
            else ""
        )
        group = (
            f'<g class="{kind}" data-method="{escape(point.label)}">'
            f"<title>{escape(tooltip)}</title>{_marker(kind, x, y)}{text}</g>"
        )
        if point.href:
            group = f'<a href="{escape(point.href)}">{group}</a>'
        parts.append(group)
    for kind, heading in (("model", "single models"), ("merge", "merges, oracle, per-sample")):
        entries = sorted((p for k, p in shown if k == kind), key=lambda p: -p.accuracy)
        if not entries:
            continue
        legend_y += 8
        parts.append(
            f'<text x="{legend_x}" y="{legend_y}" class="axis-label">{escape(heading)}</text>'
        )
        legend_y += 15
        for point in entries:
            entry = (
                f'<g class="legend-{kind}" data-method="{escape(point.label)}">'
                f"<title>{escape(_point_tooltip(kind, point, cost_format))}</title>"
                f"{_marker(kind, legend_x + 9, legend_y - 4)}"
                f'<text x="{legend_x + 24}" y="{legend_y}" class="point-label">'
                f"{escape(short_name(point.label, LEGEND_CHARS))} {point.accuracy:.1f}</text></g>"
            )
            if point.href:
                entry = f'<a href="{escape(point.href)}">{entry}</a>'
            parts.append(entry)
            legend_y += 15
    return Markup("".join(parts) + "</svg>")
