"""The routing page: every router's curve on one plot with the single models as points,
a metrics table, escaped names, and a link from the suite page."""

from __future__ import annotations

import re

import pandas as pd

from leaderboard.build import build_site
from tests.harness_cli import invoke
from tests.test_routing_suites import _embedllm_mirror


def test_routing_page_draws_every_router_and_escapes_names(tmp_path, monkeypatch, capsys):
    mirror = _embedllm_mirror(tmp_path / "mirror")
    order = mirror / "datasets" / "RZ412" / "EmbedLLM" / "model_order.csv"
    pd.DataFrame(
        {"model_id": [0, 1, 2], "model_name": ["<script>alert(1)</script>", "chat", "big"]}
    ).to_csv(order, index=False)
    results = tmp_path / "results"
    routers = ("oracle_router", "best_single", "knn_router")
    for name in routers:
        code, _, err = invoke(
            monkeypatch,
            capsys,
            "eval",
            "--method",
            name,
            "--tasks",
            "embedllm",
            "--mirror",
            str(mirror),
            "--results",
            str(results),
            "--quiet",
            "--select",
            "defaults",
        )
        assert code == 0, err
    site = tmp_path / "site"
    build_site(results, site)
    page = (site / "routing" / "embedllm.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    curves = re.findall(r'<g class="curve" data-method="([^"]+)"', page)
    assert sorted(curves) == sorted(routers)
    assert len(re.findall(r'<g class="model"', page)) == 3
    assert page.count("<polyline") == len(routers)
    # the table: one row per router
    rows = re.findall(r'<tr><td><a href="[^"]+">([^<]+)</a>', page)
    assert len(rows) == len(routers) and set(rows) == set(routers)
    suite_page = (site / "suites" / "embedllm.html").read_text()
    assert "routing/embedllm.html" in suite_page


def test_models_sharing_a_cost_get_a_legend_not_overlapping_labels():
    from leaderboard.plot import Curve, Point, curves, lone_in_column

    assert lone_in_column([10.0, 12.0, 50.0]) == [False, False, True]
    models = [Point(label=f"org/expert{i}", cost=100.0, accuracy=40.0 + i) for i in range(9)]
    merges = [
        Point(label="ties", cost=100.0, accuracy=48.0),
        Point(label="expert_router", cost=200.0, accuracy=49.0),
    ]
    svg = str(
        curves(
            [Curve(label="knn_router", points=((100.0, 47.0),))],
            title="t",
            cost_label="parameters per query",
            cost_format=lambda v: f"{v:.3g}",
            models=models,
            merges=merges,
        )
    )
    markers = re.findall(r'<g class="(model|merge)" data-method="([^"]+)">(.*?)</g>', svg)
    assert len(markers) == 11
    labelled = {name for _, name, body in markers if "<text" in body}
    assert labelled == {"expert_router"}  # alone in its cost column; the other ten share one
    legend = re.findall(r'<g class="legend-(?:model|merge)" data-method="([^"]+)"', svg)
    assert sorted(legend) == sorted(p.label for p in models + merges)
    height = int(re.search(r'height="(\d+)"', svg).group(1))
    ys = [float(y) for y in re.findall(r'class="legend-[^"]+".*?<text x="[^"]+" y="([^"]+)"', svg)]
    assert max(ys) < height  # the legend fits inside the plot


def test_records_of_one_method_are_told_apart_by_their_hyperparameters(tmp_path):
    from leaderboard.cells import Cell, Run
    from leaderboard.pages.routing import distinct_label, pooled_accuracy

    def cell(method: str, steps: int, accuracies: dict[str, float]) -> Cell:
        record = {
            "hyperparameters": {"steps": steps, "lr": 1e-4},
            "tasks": {task: {"metric": value} for task, value in accuracies.items()},
        }
        return Cell(
            "mini8",
            "built:x",
            method,
            "routing",
            "",
            "paper defaults",
            method + str(steps),
            runs=[Run(record, tmp_path / f"{method}{steps}.json")],
        )

    cells = [cell("wemoe", 0, {"a": 50.0, "b": 20.0}), cell("wemoe", 200, {"a": 60.0, "b": 30.0})]
    cells.append(cell("twin", 300, {"a": 70.0}))
    assert [distinct_label(c, cells) for c in cells] == [
        "wemoe (steps=0)",
        "wemoe (steps=200)",
        "twin",
    ]
    # pooled over the same test items: per-task accuracy weighted by the task's size
    assert pooled_accuracy(cells[0], {"a": 300, "b": 100}) == 42.5
    assert pooled_accuracy(cells[2], {"a": 300, "b": 100}) is None  # a task unscored
