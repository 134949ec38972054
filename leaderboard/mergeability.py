"""Merge-ability results (``harness transfer mergeability``) for the site.

JSON files of their own kind (``kind: mergeability``, one per suite, default
``mergeability-results/``), kept apart from run records like judge results; a file that
is not one is skipped and listed, like a bad record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KIND = "mergeability"
REQUIRED = ("suite", "signals", "scores", "points", "created")


def load_mergeability_results(directory: Path | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(valid results, problems) from ``directory``'s JSON files; none when it is None."""
    if directory is None or not Path(directory).is_dir():
        return [], []
    results, problems = [], []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            problems.append(f"{path}: not JSON ({type(error).__name__})")
            continue
        if not isinstance(result, dict) or result.get("kind") != KIND:
            problems.append(f"{path}: not a merge-ability result (kind {KIND!r})")
            continue
        missing = [key for key in REQUIRED if key not in result]
        if missing:
            problems.append(f"{path}: merge-ability result without {', '.join(missing)}")
            continue
        result["_file"] = path.name
        results.append(result)
    return results, problems
