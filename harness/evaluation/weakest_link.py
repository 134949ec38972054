"""The "law of the weakest link" statistics (Zhong et al., arXiv 2409.19951, §4).

A cross capability (Spanish & Reasoning) is compared with its two parent capabilities
(Spanish, Reasoning) scored on the same model: is it below both (the paper's finding for
most models), between them, or above both? The paper counts the cross capabilities below
both parents among those whose parents differ by more than 3 points (38 of 58); both that
count and the plain count are given.

Reusable by any suite that scores capabilities and knows which pair each cross capability
combines (CrossEval; a generated cross-capability set built from the harness's own
offline suites): pass per-capability scores and the cross → parents map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the paper's threshold: parents closer than this are not counted in its statistic
PARENT_GAP = 3.0


def weakest_link(
    scores: Mapping[str, float],
    parents: Mapping[str, tuple[str, str]],
    *,
    parent_gap: float = PARENT_GAP,
) -> dict[str, Any]:
    """Each cross capability against the min and max of its parents, and the counts.

    Cross capabilities whose score or either parent's score is missing are listed under
    ``incomplete`` and left out of the counts."""
    rows: dict[str, dict[str, Any]] = {}
    incomplete = []
    for cross, (first, second) in parents.items():
        if cross not in scores or first not in scores or second not in scores:
            if cross in scores or first in scores or second in scores:
                incomplete.append(cross)
            continue
        value, low, high = (
            float(scores[cross]),
            min(scores[first], scores[second]),
            max(scores[first], scores[second]),
        )
        position = "below_both" if value < low else "above_both" if value > high else "between"
        rows[cross] = {
            "score": value,
            "parents": [first, second],
            "parent_scores": [float(scores[first]), float(scores[second])],
            "min_parent": float(low),
            "max_parent": float(high),
            "minus_min_parent": value - float(low),
            "minus_max_parent": value - float(high),
            "position": position,
            "parents_differ": bool(high - low > parent_gap),
        }
    differing = [row for row in rows.values() if row["parents_differ"]]
    return {
        "cross": rows,
        "count": len(rows),
        "below_both": sum(row["position"] == "below_both" for row in rows.values()),
        "between": sum(row["position"] == "between" for row in rows.values()),
        "above_both": sum(row["position"] == "above_both" for row in rows.values()),
        "parent_gap": parent_gap,
        "count_parents_differ": len(differing),
        "below_both_parents_differ": sum(row["position"] == "below_both" for row in differing),
        "incomplete": sorted(incomplete),
    }
