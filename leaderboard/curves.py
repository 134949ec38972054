"""Accuracy-versus-budget curves as inline SVG (no JavaScript), drawn at build time.

One polyline per series (a distillation method at one setting, its budgets in order),
optional single points (data-free merges, which have a cost but no budget) and dashed
horizontal lines (references without a cost on this axis). The budget axis is
``log10(1 + x)`` as on the cost plots, so 0 stays on the axis; every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from leaderboard.plot import (
    Point,
    Reference,
    _placed_labels,
    _squash,
    frame_and_y_grid,
    tick_values,
)

WIDTH, HEIGHT = 760, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 300, 20, 52
COLOURS = ("#1f5fa8", "#c2571a", "#2e7d32", "#8e24aa", "#00838f", "#6d4c41", "#ad1457")


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]  # (budget, accuracy), any order
    href: str = ""


def curves(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    x_format: Callable[[float], str],
    y_label: str = "normalised accuracy (%)",
    points: Sequence[Point] = (),
    references: Sequence[Reference] = (),
) -> Markup:
    """The SVG markup of the curves, the single points and the reference lines."""
    finite = [
        Series(s.label, tuple(sorted(p for p in s.points if all(map(math.isfinite, p)))), s.href)
        for s in series
    ]
    finite = [s for s in finite if s.points]
    points = [p for p in points if math.isfinite(p.cost) and math.isfinite(p.accuracy)]
    references = [r for r in references if math.isfinite(r.accuracy)]
    parts = [
        f'<svg class="cost-plot budget-plot" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    xs = [x for s in finite for x, _ in s.points] + [p.cost for p in points]
    if not xs:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
        return Markup("".join(parts) + "</svg>")
    ys = [y for s in finite for _, y in s.points] + [p.accuracy for p in points]
    ys += [r.accuracy for r in references]
    x_max = max(_squash(x) for x in xs)
    x_max = x_max * 1.05 if x_max > 0 else 1.0
    y_low, y_high = min(ys), max(ys)
    pad = max((y_high - y_low) * 0.1, 1.0)
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * _squash(x) / x_max

    def sy(y: float) -> float:
        return TOP + plot_h * (1 - (y - y_low) / (y_high - y_low))

    parts += frame_and_y_grid(plot_w, plot_h, y_low, y_high, sy)
    last_x = -1e9
    for value in tick_values(x_max, whole=True):
        x = sx(value)
        if x - last_x < 48:
            continue
        last_x = x
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>'
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
            f'class="tick">{escape(x_format(value))}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle" '
        f'class="axis-label">{escape(x_label)} (log scale) →</text>'
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" class="axis-label" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)} →</text>'
    )
    reference_ys = _placed_labels([(LEFT + plot_w, sy(r.accuracy)) for r in references])
    for reference, label_y in zip(references, reference_ys):
        y = sy(reference.accuracy)
        parts.append(
            f'<g class="reference" data-method="{escape(reference.label)}">'
            f"<title>{escape(f'{reference.label}: {reference.accuracy:.2f}')}</title>"
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{LEFT + plot_w + 6}" y="{label_y:.1f}" class="reference-label">'
            f"{escape(reference.label[:40])}</text></g>"
        )
    for index, line in enumerate(finite):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        parts.append(
            f'<g class="series" data-method="{escape(line.label)}">'
            f"<title>{escape(line.label)}</title>"
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for x, y in line.points:
            tip = f"{line.label}: {y:.2f} at {x_format(x)}"
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        parts.append("</g>")
    ends = [(sx(s.points[-1][0]), sy(s.points[-1][1])) for s in finite]
    for index, (line, label_y) in enumerate(zip(finite, _placed_labels(ends))):
        colour = COLOURS[index % len(COLOURS)]
        x = ends[index][0]
        text = (
            f'<text x="{x + 6:.1f}" y="{label_y:.1f}" class="point-label" fill="{colour}">'
            f"{escape(line.label[:52])}</text>"
        )
        parts.append(f'<a href="{escape(line.href)}">{text}</a>' if line.href else text)
    label_ys = _placed_labels([(sx(p.cost), sy(p.accuracy)) for p in points])
    for point, label_y in zip(points, label_ys):
        x, y = sx(point.cost), sy(point.accuracy)
        tip = f"{point.label}: {point.accuracy:.2f} at {x_format(point.cost)}"
        marker = (
            f'<g class="point" data-method="{escape(point.label)}"><title>{escape(tip)}</title>'
            f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" class="merge"/>'
            f'<text x="{x + 8:.1f}" y="{label_y:.1f}" class="point-label">'
            f"{escape(point.label[:28])}</text></g>"
        )
        parts.append(f'<a href="{escape(point.href)}">{marker}</a>' if point.href else marker)
    return Markup("".join(parts) + "</svg>")
