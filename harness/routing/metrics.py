"""Routing metrics: quality and cost of a routing, AIQ (RouterBench), PGR/APGR and CPT
(RouteLLM).

- AIQ (Hu et al., 2024, "RouterBench", https://arxiv.org/abs/2403.12031): the area under
  the router's non-decreasing convex hull in the (cost, quality) plane, over a cost range
  [c_min, c_max], divided by the range's width. The hull is the upper concave envelope of
  the router's points (a router can mix two operating points at random, so every point
  of a chord is reachable) made non-decreasing (paying more never has to lower quality);
  it is extended flat from its costliest point to c_max and is 0 below its cheapest one.
- PGR (Ong et al., 2024, "RouteLLM", https://arxiv.org/abs/2406.18665): the performance
  gap recovered, (q − q_weak) / (q_strong − q_weak). APGR is the area under PGR against
  the fraction of calls to the strong model, over [0, 1]; CPT(x%) is the fewest strong
  calls (in %) at which PGR reaches x%. Over more than two models the strong-call
  fraction generalises to the normalised cost (c − c_weak) / (c_strong − c_weak), which
  equals it when the weak model costs 0 and the strong 1 per call.

Curves are lists of (cost, quality) points; the interpolation between points is linear
for APGR and CPT, as a router mixing two thresholds at random achieves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Point = tuple[float, float]  # (cost, quality)


def quality(scores: np.ndarray) -> float:
    """Mean score in percent: accuracy where scores are correct/incorrect."""
    return float(np.mean(scores)) * 100.0 if len(scores) else 0.0


def mean_cost(costs: np.ndarray) -> float:
    return float(np.mean(costs)) if len(costs) else 0.0


def nondecreasing_hull(points: Sequence[Point]) -> list[Point]:
    """Vertices of the non-decreasing upper convex hull, cheapest first."""
    ordered = sorted(points, key=lambda p: (p[0], -p[1]))
    front: list[Point] = []  # strictly better quality than everything cheaper
    for cost, value in ordered:
        if not front or value > front[-1][1]:
            if front and cost == front[-1][0]:
                front[-1] = (cost, value)
            else:
                front.append((cost, value))
    hull: list[Point] = []
    for point in front:  # upper hull by the monotone chain: drop non-concave turns
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            cross = (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1)
            if cross >= 0:  # hull[-1] lies on or below the chord hull[-2] → point
                hull.pop()
            else:
                break
        hull.append(point)
    return hull


def hull_value(hull: Sequence[Point], cost: float) -> float:
    """The hull's quality at ``cost`` (0 below its cheapest vertex, flat after the last)."""
    if not hull or cost < hull[0][0]:
        return 0.0
    xs = [p[0] for p in hull]
    ys = [p[1] for p in hull]
    return float(np.interp(cost, xs, ys))


def aiq(points: Sequence[Point], cost_range: tuple[float, float] | None = None) -> float:
    """Average quality over a cost range under the non-decreasing convex hull.

    ``cost_range`` defaults to the points' own cheapest and costliest; pass the suite's
    range (cheapest to costliest single model) so routers are compared on one range.
    """
    hull = nondecreasing_hull(points)
    if not hull:
        return 0.0
    low, high = cost_range or (min(p[0] for p in points), max(p[0] for p in points))
    if high <= low:
        return hull_value(hull, high)
    xs = [low] + [p[0] for p in hull if low < p[0] < high] + [high]
    ys = [hull_value(hull, x) for x in xs]
    area = 0.0
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        # a segment that starts below the hull's first vertex is 0 until it
        if x0 < hull[0][0] <= x1:
            area += (x1 - hull[0][0]) * (hull[0][1] + y1) / 2.0
        else:
            area += (x1 - x0) * (y0 + y1) / 2.0
    return area / (high - low)


def pgr(value: float, weak: float, strong: float) -> float:
    """Performance gap recovered: 0 at the weak model, 1 at the strong one."""
    if strong == weak:
        return 0.0
    return (value - weak) / (strong - weak)


def pgr_curve(points: Sequence[Point], weak: Point, strong: Point) -> list[tuple[float, float]]:
    """(strong-call fraction, PGR) per point, with the two models' own points at 0 and 1,
    sorted by fraction. Costs are normalised between the weak and the strong model."""
    span = strong[0] - weak[0]
    curve = [(0.0, 0.0), (1.0, 1.0)]
    for cost, value in points:
        fraction = (cost - weak[0]) / span if span > 0 else 0.0
        curve.append((min(max(fraction, 0.0), 1.0), pgr(value, weak[1], strong[1])))
    return _function_of_first(curve)


def _function_of_first(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One value per x (the best), sorted by x."""
    best: dict[float, float] = {}
    for x, y in curve:
        best[x] = max(y, best.get(x, -np.inf))
    return sorted(best.items())


def apgr(points: Sequence[Point], weak: Point, strong: Point) -> float:
    """Average PGR over strong-call fractions in [0, 1] (trapezoids between points)."""
    curve = pgr_curve(points, weak, strong)
    xs, ys = np.array([c[0] for c in curve]), np.array([c[1] for c in curve])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def cpt(points: Sequence[Point], weak: Point, strong: Point, target: float) -> float:
    """Call-performance threshold: the fewest strong calls (percent) at which the PGR
    curve (linear between points) reaches ``target`` (a fraction: 0.5 for CPT(50%))."""
    curve = pgr_curve(points, weak, strong)
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y0 >= target:
            return 100.0 * x0
        if y1 >= target:
            return 100.0 * (x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return 100.0


def per_task(
    tasks: np.ndarray, scores: np.ndarray, costs: np.ndarray
) -> Mapping[str, dict[str, float]]:
    """Quality (%), mean cost and count per task of a routing's per-query outcomes."""
    result = {}
    for task in dict.fromkeys(tasks.tolist()):
        rows = tasks == task
        result[task] = {
            "accuracy": quality(scores[rows]),
            "cost": mean_cost(costs[rows]),
            "n": int(rows.sum()),
        }
    return result
