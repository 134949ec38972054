"""Run pages: one record in full, how to reproduce it, and its record as JSON."""

from __future__ import annotations

import json

from leaderboard.catalog import safe_url
from leaderboard.pages.base import Page, PageKind, Site


class RunPages(PageKind):
    """One page per record (``runs/<run id>.html``) plus the record itself as JSON."""

    def add_to(self, site: Site) -> None:
        cell_of = {id(run): cell for cell in self.data.cells for run in cell.runs}
        for run in self.data.runs:
            record = run.record
            cell = cell_of[id(run)]
            selection = record["selection"]
            chosen = record["hyperparameters"]
            candidates = [
                {
                    "hyperparameters": c.get("hyperparameters", {}),
                    "score": c.get("score"),
                    "chosen": c.get("hyperparameters") == chosen,
                }
                for c in selection.get("candidates") or []
            ]
            site.files[f"runs/{run.page[:-5]}.json"] = json.dumps(record, indent=2) + "\n"
            siblings = [r for r in cell.runs if r is not run]
            site.pages.append(
                Page(
                    f"runs/{run.page}",
                    "run.html",
                    {
                        "title": f"{record['run_id']} — run",
                        "record": record,
                        "cell": cell,
                        "source_path": str(run.path),
                        "candidates": candidates,
                        "siblings": siblings,
                        "record_json": f"runs/{run.page[:-5]}.json",
                        "method_page": self.data.method_pages[record["method"]["name"]],
                        "suite_page": self.data.suite_page(record["suite"]["name"]),
                        "reference_url": safe_url(record["method"]["reference"]),
                    },
                )
            )
