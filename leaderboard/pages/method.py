"""Method pages: registry metadata, hyperparameters, results across suites, published numbers."""

from __future__ import annotations

import json

from leaderboard import format as fmt
from leaderboard.catalog import safe_url
from leaderboard.pages.base import (
    Page,
    PageKind,
    Site,
    citation,
    published_index,
    runs_field,
    source_link,
    stat_data,
    stat_field,
)
from leaderboard.tables import Column, Field, Row, Table


class MethodPages(PageKind):
    """One page per method (``methods/<slug>.html``), registered or only known from records."""

    def add_to(self, site: Site) -> None:
        for name, info in sorted(self.data.methods.items()):
            cells = [c for c in self.data.cells if c.method == name]
            results = Table(
                id="method-results",
                title=f"{name}: results across suites",
                columns=[
                    Column("suite", "suite"),
                    Column("checkpoint_set", "checkpoints"),
                    Column("setting", "hyperparameters"),
                    Column("average", "average", numeric=True),
                    Column("normalized", "normalised", numeric=True),
                    Column("runs", "runs", numeric=True),
                    Column("published", "published", numeric=True),
                    Column("delta", "Δ", numeric=True),
                    Column("method_s", "merge time", numeric=True),
                    Column("extra", "extra params", numeric=True),
                ],
                download_stem=f"data/{self.data.method_pages[name][:-5]}",
            )
            for cell in cells:
                suite = self.data.suites[cell.suite]
                match = published_index(suite).get((cell.method, cell.checkpoint_set))
                average = cell.stat("average")
                delta = average.mean - match.average if match and average.mean is not None else None
                results.rows.append(
                    Row(
                        cells={
                            "suite": Field(
                                cell.suite, href=f"suites/{self.data.suite_slugs[cell.suite]}.html"
                            ),
                            "checkpoint_set": Field(cell.checkpoint_set),
                            "setting": Field(cell.chosen, title=f"protocol: {cell.setting}"),
                            "average": stat_field(average),
                            "normalized": stat_field(cell.stat("normalized_average")),
                            "runs": runs_field(cell),
                            "published": Field(
                                fmt.number(match.average) if match else "–",
                                sort=match.average if match else None,
                                href=source_link(match.source) if match else None,
                                title=f"{citation(match)} ({match.checkpoint_set})"
                                if match
                                else "",
                            ),
                            "delta": Field(fmt.signed(delta), sort=delta),
                            "method_s": stat_field(cell.stat("merge_s"), fmt.seconds),
                            "extra": stat_field(cell.stat("extra_parameters"), fmt.count),
                        },
                        data={
                            "suite": cell.suite,
                            "checkpoint_set": cell.checkpoint_set,
                            "setting": cell.setting,
                            "hyperparameters": cell.chosen,
                            **stat_data("average", average),
                            **stat_data("normalized_average", cell.stat("normalized_average")),
                            "runs": len(cell.runs),
                            "published_average": match.average if match else None,
                            "delta": delta,
                            **stat_data("merge_s", cell.stat("merge_s")),
                            **stat_data("method_s", cell.stat("method_s")),
                            **stat_data("extra_parameters", cell.stat("extra_parameters")),
                        },
                    )
                )
            params = Table(
                id="params",
                title=f"{name}: hyperparameters",
                columns=[
                    Column("name", "name"),
                    Column("default", "paper default"),
                    Column("grid", "validation grid"),
                    Column("range", "range / choices"),
                    Column("help", "meaning"),
                ],
                download_stem=f"data/{self.data.method_pages[name][:-5]}-hyperparameters",
            )
            for param, spec in info.params.items():
                low, high, choices = spec.get("low"), spec.get("high"), spec.get("choices")
                bounds = (
                    ", ".join(map(str, choices))
                    if choices
                    else (
                        f"[{low if low is not None else '−∞'}, {high if high is not None else '∞'}]"
                    )
                )
                params.rows.append(
                    Row(
                        cells={
                            "name": Field(param),
                            "default": Field(json.dumps(spec.get("default"), default=str)),
                            "grid": Field(
                                ", ".join(map(str, spec.get("grid") or [])) or "– (default used)"
                            ),
                            "range": Field(bounds),
                            "help": Field(str(spec.get("help") or "")),
                        },
                        data={
                            "name": param,
                            "default": spec.get("default"),
                            "grid": json.dumps(spec.get("grid") or [], default=str),
                            "low": low,
                            "high": high,
                            "choices": json.dumps(choices, default=str) if choices else None,
                            "help": spec.get("help") or "",
                        },
                    )
                )
            published_here = [
                (suite_name, p)
                for suite_name, suite in sorted(self.data.suites.items())
                for p in suite.published
                if p.method == name
            ]
            site.tables += [results, params]
            site.pages.append(
                Page(
                    self.data.method_pages[name],
                    "method.html",
                    {
                        "title": f"{name} — method",
                        "method": info,
                        "family": info.family or (cells[0].family if cells else ""),
                        "reference_url": safe_url(info.reference),
                        "results": results,
                        "params": params,
                        "published_here": published_here,
                        "suite_pages": self.data.suite_slugs,
                        "citation": citation,
                        "source_link": source_link,
                    },
                )
            )
