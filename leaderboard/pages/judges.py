"""The judges page: each judge's agreement with CrossEval's human ratings, beside the
published judges' (``harness judge meta`` results)."""

from __future__ import annotations

from typing import Any

from leaderboard import format as fmt
from leaderboard.pages.base import Page, PageKind, Site
from leaderboard.tables import Column, Field, Row, Table

METRICS = ("pearson", "spearman", "kendall")
PAGE = "judges.html"


def _number(value: Any) -> Field:
    if value is None:
        return Field("–")
    return Field(fmt.number(float(value), 3), sort=float(value))


class JudgePages(PageKind):
    """``judges.html`` (only when there are judge results) and each result as JSON."""

    def add_to(self, site: Site) -> None:
        results = self.data.judge_results
        if not results:
            return
        overall = Table(
            id="judges",
            title="Judges against CrossEval's human ratings",
            columns=[
                Column("judge", "judge", sticky=True),
                Column("source", "source"),
                Column("responses", "responses", numeric=True),
                *(Column(m, m.capitalize(), numeric=True) for m in METRICS),
                Column(
                    "unscored",
                    "unscored",
                    numeric=True,
                    title="no score after retries, timeouts, rate limits, failures, missing",
                ),
                Column(
                    "filtered",
                    "filtered",
                    numeric=True,
                    title="responses left out "
                    "(attachments the judge cannot take, empty or unrated responses)",
                ),
                Column("created", "created"),
            ],
            download_stem="data/judges",
            note="Each human-rated response scored by the judge with the other two as "
            "references, against the mean of its two human ratings (Zhong et al. 2024, "
            "Table 2). Published rows are the paper's, on all 1,400 prompts.",
        )
        published: dict[str, dict[str, Any]] = {}
        for result in results:
            judge = result["judge"]
            outcomes = result["judge_outcomes"]
            unscored = sum(v for k, v in outcomes.items() if k != "scored")
            filtered = sum(result.get("filtered", {}).values())
            file = f"judges/{result['_file']}"
            site.files[file] = _dump(result)
            overall.rows.append(
                Row(
                    cells={
                        "judge": Field(str(judge.get("identity", "?")), href=file),
                        "source": Field("measured"),
                        "responses": Field(str(result["responses"]), sort=result["responses"]),
                        **{m: _number(result["overall"].get(m)) for m in METRICS},
                        "unscored": Field(str(unscored), sort=unscored),
                        "filtered": Field(str(filtered), sort=filtered),
                        "created": Field(str(result["created"])),
                    },
                    data={
                        "judge": judge.get("identity"),
                        "source": "measured",
                        "responses": result["responses"],
                        **{m: result["overall"].get(m) for m in METRICS},
                        "unscored": unscored,
                        "filtered": filtered,
                        "created": result["created"],
                        "file": file,
                    },
                )
            )
            for entry in (result.get("published") or {}).get("judges", []):
                published.setdefault(str(entry.get("judge")), entry)
        for name, entry in sorted(published.items()):
            overall.rows.append(
                Row(
                    cells={
                        "judge": Field(name),
                        "source": Field("paper", css="published"),
                        **{m: _number(entry.get(m)) for m in METRICS},
                    },
                    data={"judge": name, "source": "paper", **{m: entry.get(m) for m in METRICS}},
                )
            )
        capabilities = sorted({c for r in results for c in r["per_capability"]})
        per_capability = Table(
            id="judges-per-capability",
            title="Pearson correlation per capability",
            columns=[
                Column("capability", "capability", sticky=True),
                *(
                    Column(f"judge{i}", str(r["judge"].get("identity", "?")), numeric=True)
                    for i, r in enumerate(results)
                ),
            ],
            download_stem="data/judges-per-capability",
        )
        for capability in capabilities:
            cells = {"capability": Field(capability)}
            data: dict[str, Any] = {"capability": capability}
            for i, result in enumerate(results):
                value = result["per_capability"].get(capability, {}).get("pearson")
                cells[f"judge{i}"] = _number(value)
                data[str(result["judge"].get("identity"))] = value
            per_capability.rows.append(Row(cells=cells, data=data))
        site.tables += [overall, per_capability]
        site.views.append(
            (
                "Judges",
                PAGE,
                f"{len(results)} judge meta-evaluation result(s): agreement of the judges of "
                "generated responses with CrossEval's human ratings, beside the published judges",
            )
        )
        site.pages.append(
            Page(
                PAGE,
                "judges.html",
                {"title": "Judges — merging harness", "tables": [overall, per_capability]},
            )
        )


def _dump(result: dict[str, Any]) -> str:
    import json

    return json.dumps({k: v for k, v in result.items() if k != "_file"}, indent=2) + "\n"
