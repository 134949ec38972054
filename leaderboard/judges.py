"""Judge meta-evaluation results (``harness judge meta``) for the site.

They are JSON files of their own kind (``kind: crosseval-judge-meta``), kept apart from
run records (default ``judge-results/``); a file that is not one is skipped and listed,
like a bad record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KIND = "crosseval-judge-meta"
REQUIRED = ("judge", "overall", "per_capability", "responses", "judge_outcomes", "created")


def load_judge_results(directory: Path | None) -> tuple[list[dict[str, Any]], list[str]]:
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
            problems.append(f"{path}: not a judge meta-evaluation result (kind {KIND!r})")
            continue
        missing = [key for key in REQUIRED if key not in result]
        if missing or not isinstance(result.get("judge"), dict):
            problems.append(f"{path}: judge result without {', '.join(missing) or 'judge'}")
            continue
        result["_file"] = path.name
        results.append(result)
    return results, problems
