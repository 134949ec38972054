"""Judge meta-evaluation results (``harness judge meta``) for the site.

They are JSON files of their own kind (``kind: crosseval-judge-meta``), kept apart from
run records (default ``judge-results/``); a file that is not one is skipped and listed,
like a bad record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leaderboard.result_files import load_result_files

KIND = "crosseval-judge-meta"
REQUIRED = ("judge", "overall", "per_capability", "responses", "judge_outcomes", "created")


def load_judge_results(directory: Path | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(valid results, problems) from ``directory``'s JSON files; none when it is None."""
    return load_result_files(
        directory,
        KIND,
        REQUIRED,
        "judge meta-evaluation result",
        valid=lambda result: isinstance(result.get("judge"), dict),
    )
