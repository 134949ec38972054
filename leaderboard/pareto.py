"""The Pareto front of accuracy (higher is better) against a cost (lower is better)."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_mask(costs: Sequence[float], accuracies: Sequence[float]) -> list[bool]:
    """True for each point no other point beats: cost ≤ and accuracy ≥, one of them strictly."""
    mask = []
    for i, (cost_i, accuracy_i) in enumerate(zip(costs, accuracies)):
        dominated = any(
            cost_j <= cost_i
            and accuracy_j >= accuracy_i
            and (cost_j < cost_i or accuracy_j > accuracy_i)
            for j, (cost_j, accuracy_j) in enumerate(zip(costs, accuracies))
            if j != i
        )
        mask.append(not dominated)
    return mask
