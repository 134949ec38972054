"""Result files of a kind of their own (judge meta-evaluations, merge-ability scores) for
the site: JSON files tagged ``kind``, kept apart from run records; a file that is not a
valid one is skipped and listed, like a bad record."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def load_result_files(
    directory: Path | None,
    kind: str,
    required: Sequence[str],
    what: str,
    valid: Callable[[dict[str, Any]], bool] = lambda result: True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """(valid results, problems) from ``directory``'s JSON files of ``kind``; none when it
    is None. ``what`` names the kind in problems ("judge meta-evaluation result")."""
    if directory is None or not Path(directory).is_dir():
        return [], []
    results, problems = [], []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            problems.append(f"{path}: not JSON ({type(error).__name__})")
            continue
        if not isinstance(result, dict) or result.get("kind") != kind:
            problems.append(f"{path}: not a {what} (kind {kind!r})")
            continue
        missing = [key for key in required if key not in result]
        if missing or not valid(result):
            problems.append(f"{path}: {what} without {', '.join(missing) or 'a valid layout'}")
            continue
        result["_file"] = path.name
        results.append(result)
    return results, problems
