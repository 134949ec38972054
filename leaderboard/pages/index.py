"""The index page: every suite, every method and every run, with downloads."""

from __future__ import annotations

import json
from typing import Any

from leaderboard import format as fmt
from leaderboard.catalog import safe_url
from leaderboard.pages.base import Page, PageKind, Site, whole_suite
from leaderboard.tables import Column, Field, Row, Table


class IndexPage(PageKind):
    """``index.html``: the suites table, the methods table and all runs."""

    def add_to(self, site: Site) -> None:
        suites = Table(
            id="suites",
            title="Suites",
            columns=[
                Column("suite", "suite"),
                Column("description", "description"),
                Column("tasks", "tasks", numeric=True),
                Column("checkpoints", "checkpoint sets"),
                Column("methods", "methods", numeric=True),
                Column("runs", "runs", numeric=True),
                Column("best", "best average", title="any method, baselines included"),
                Column(
                    "best_method",
                    "best non-baseline",
                    title="best average among methods that are not per-task baselines "
                    "(individual experts and ensembles are upper references)",
                ),
                Column("published", "published numbers", numeric=True),
            ],
            download_stem="data/suites",
        )
        for name in sorted(self.data.suites):
            suite, slug = self.data.suites[name], self.data.suite_slugs[name]
            cells = self.data.suite_cells[name]
            tasks = set(suite.tasks).union(*(c.tasks for c in cells)) if cells else set(suite.tasks)
            # only whole-suite cells compare: a run on 2 of 8 tasks is not "best"
            ranked = [c for c in whole_suite(suite, cells) if c.stat("average").mean is not None]
            best = max(ranked, key=lambda c: c.stat("average").mean) if ranked else None
            methods_only = [c for c in ranked if c.family != "baseline"]
            best_method = (
                max(methods_only, key=lambda c: c.stat("average").mean) if methods_only else None
            )
            checkpoint_sets = sorted({c.checkpoint_set for c in cells})
            runs = sum(len(c.runs) for c in cells)
            suites.rows.append(
                Row(
                    cells={
                        "suite": Field(suite.name, href=f"suites/{slug}.html"),
                        "description": Field(suite.description or ""),
                        "tasks": Field(  # "–": tasks set by options, none recorded yet
                            str(len(tasks)) if tasks else "–",
                            sort=len(tasks),
                            title="" if tasks else "set by the suite's options at run time",
                        ),
                        "checkpoints": Field(", ".join(checkpoint_sets) or "–"),
                        "methods": Field(
                            str(len({c.method for c in cells})), sort=len({c.method for c in cells})
                        ),
                        "runs": Field(str(runs), sort=runs),
                        "best": Field(
                            f"{best.method} {fmt.number(best.stat('average').mean)}"
                            if best
                            else "–",
                            sort=best.stat("average").mean if best else None,
                            href=self.data.method_pages[best.method] if best else None,
                        ),
                        "best_method": Field(
                            f"{best_method.method} {fmt.number(best_method.stat('average').mean)}"
                            if best_method
                            else "–",
                            sort=best_method.stat("average").mean if best_method else None,
                            href=self.data.method_pages[best_method.method]
                            if best_method
                            else None,
                            detail=best_method.chosen if best_method else "",
                        ),
                        "published": Field(str(len(suite.published)), sort=len(suite.published)),
                    },
                    data={
                        "suite": suite.name,
                        "description": suite.description,
                        "tasks": len(tasks),
                        "checkpoint_sets": ";".join(checkpoint_sets),
                        "methods": len({c.method for c in cells}),
                        "runs": runs,
                        "best_method": best.method if best else None,
                        "best_average": best.stat("average").mean if best else None,
                        "best_method_not_baseline": best_method.method if best_method else None,
                        "best_method_not_baseline_average": (
                            best_method.stat("average").mean if best_method else None
                        ),
                        "published_numbers": len(suite.published),
                        "registered": suite.registered,
                    },
                )
            )
        methods = Table(
            id="methods",
            title="Methods",
            columns=[
                Column("method", "method"),
                Column("family", "family"),
                Column("suites", "suites with results"),
                Column("runs", "runs", numeric=True),
                Column("paper", "paper"),
            ],
            download_stem="data/methods",
            filterable=True,
        )
        for name, info in sorted(self.data.methods.items()):
            cells = [c for c in self.data.cells if c.method == name]
            family = info.family or (cells[0].family if cells else "")
            suites_here = sorted({c.suite for c in cells})
            runs = sum(len(c.runs) for c in cells)
            url = safe_url(info.reference)
            methods.rows.append(
                Row(
                    cells={
                        "method": Field(name, sort=name.lower(), href=self.data.method_pages[name]),
                        "family": Field(family),
                        "suites": Field(
                            "" if suites_here else "–",
                            sort=", ".join(suites_here),
                            links=[
                                (s, f"suites/{self.data.suite_slugs[s]}.html") for s in suites_here
                            ],
                        ),
                        "runs": Field(str(runs), sort=runs),
                        "paper": Field(info.reference or "–", href=url),
                    },
                    data={
                        "method": name,
                        "family": family,
                        "suites": ";".join(suites_here),
                        "runs": runs,
                        "reference": info.reference,
                        "registered": info.registered,
                    },
                    family=family,
                    search=f"{name} {family}",
                )
            )
        all_runs = Table(
            id="runs",
            title="All runs",
            columns=[
                Column("run", "run"),
                Column("suite", "suite"),
                Column("method", "method"),
                Column("seed", "seed", numeric=True),
                Column("average", "average", numeric=True),
                Column("created", "created"),
            ],
            download_stem="data/runs",
        )
        for run in sorted(self.data.runs, key=lambda r: str(r.path)):
            record = run.record
            all_runs.rows.append(
                Row(
                    cells={
                        "run": Field(record["run_id"], href=f"runs/{run.page}"),
                        "suite": Field(record["suite"]["name"]),
                        "method": Field(record["method"]["name"]),
                        "seed": Field(str(record["seed"]), sort=record["seed"]),
                        "average": Field(fmt.number(record["average"]), sort=record["average"]),
                        "created": Field(record["created"]),
                    },
                    data=_flat_run(record),
                )
            )
        site.tables += [suites, methods, all_runs]
        site.pages.append(
            Page(
                "index.html",
                "index.html",
                {
                    "title": "Leaderboard — merging harness",
                    "suites": suites,
                    "methods": methods,
                    "runs": all_runs,
                    "problems": self.data.problems,
                    "views": site.views,
                },
            )
        )


def _flat_run(record: dict[str, Any]) -> dict[str, Any]:
    """One run as a flat row: the identity, every metric and every cost."""
    suite, timings, memory = record["suite"], record["timings"], record["peak_memory"]
    row: dict[str, Any] = {
        "run_id": record["run_id"],
        "created": record["created"],
        "suite": suite["name"],
        "checkpoint_set": suite["checkpoint_set"],
        "method": record["method"]["name"],
        "family": record["method"]["family"],
        "seed": record["seed"],
        "selection": record["selection"]["strategy"],
        "hyperparameters": json.dumps(record["hyperparameters"], sort_keys=True, default=str),
        "average": record["average"],
        "normalized_average": record["normalized_average"],
    }
    row.update({f"task:{t}": entry["metric"] for t, entry in record["tasks"].items()})
    row.update({f"{k}": v for k, v in timings.items()})
    row.update(
        {
            "cpu_rss_bytes": memory.get("cpu_rss_bytes"),
            "cuda_bytes": memory.get("cuda_bytes"),
            "extra_parameters": record["extra_parameters"],
            "device": record["environment"]["device"],
            "git_commit": record["environment"].get("git_commit"),
            "command": record["command"],
        }
    )
    return row
