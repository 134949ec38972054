"""Merge-ability results (``harness transfer mergeability``) for the site.

JSON files of their own kind (``kind: mergeability``, one per suite, default
``mergeability-results/``), kept apart from run records like judge results; a file that
is not one is skipped and listed, like a bad record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leaderboard.result_files import load_result_files

KIND = "mergeability"
REQUIRED = ("suite", "signals", "scores", "points", "created")


def load_mergeability_results(directory: Path | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(valid results, problems) from ``directory``'s JSON files; none when it is None."""
    return load_result_files(directory, KIND, REQUIRED, "merge-ability result")
