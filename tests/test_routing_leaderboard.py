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
