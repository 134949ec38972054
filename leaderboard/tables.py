"""One table = what the page shows (formatted, linked, sortable) + what it downloads.

Every table on the site is built as a :class:`Table`, so every table gets the same
sort/filter behaviour and a CSV and JSON download of its raw numbers (means, stds and
run counts as separate columns, never the formatted ``mean ± std`` text).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    title: str = ""  # header tooltip: what the column means
    sticky: bool = False  # stays in view when the table scrolls sideways


@dataclass
class Field:
    """One displayed cell: text, the value it sorts by, and optional links."""

    text: str
    sort: float | str | None = None
    href: str | None = None
    title: str = ""
    detail: str = ""  # small second line, e.g. the run count
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, href)
    css: str = ""


@dataclass
class Row:
    cells: dict[str, Field]
    data: dict[str, Any]  # the raw values exported to CSV and JSON
    family: str = ""
    search: str = ""  # text the filter box matches
    css: str = ""


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    download_stem: str = ""  # e.g. "data/suite-mini8" (relative to the site root)
    url_state: bool = False  # sort/filter kept in the URL (one table per page)
    filterable: bool = False
    note: str = ""

    @property
    def families(self) -> list[str]:
        return sorted({row.family for row in self.rows if row.family})

    def frame(self) -> pd.DataFrame:
        keys: list[str] = []
        for row in self.rows:
            keys.extend(key for key in row.data if key not in keys)
        return pd.DataFrame([row.data for row in self.rows], columns=keys)

    def write_downloads(self, site_root: Path) -> None:
        """``<stem>.csv`` and ``<stem>.json`` under the site root."""
        base = site_root / self.download_stem
        base.parent.mkdir(parents=True, exist_ok=True)
        frame = self.frame().apply(lambda column: column.map(_csv_safe))  # pandas 2.0 too
        frame.to_csv(base.parent / f"{base.name}.csv", index=False)
        payload = {
            "table": self.title,
            "rows": [{k: _json_safe(v) for k, v in row.data.items()} for row in self.rows],
        }
        (base.parent / f"{base.name}.json").write_text(json.dumps(payload, indent=1) + "\n")


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (a method could be named ``=cmd()``)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
