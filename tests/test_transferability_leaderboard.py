"""The transferability page: τ_w per estimator × target, published rows, estimator time."""

from __future__ import annotations

import csv
import io

from harness.run.runner import RunSpec, run
from harness.suite import Published
from leaderboard.build import build_site
from tests.conftest import register_for_test
from tests.transferability_zoo import TinyZoo


class PublishedTinyZoo(TinyZoo):
    published = [
        Published(
            "sfda",
            0.5,
            "https://arxiv.org/abs/2207.03036",
            "default",
            per_task={"alpha": 0.25, "beta": 0.75},
            note="<script>alert(1)</script>",
        )
    ]


def test_page_shows_measured_and_published_tau_w(monkeypatch, tmp_path):
    suite = register_for_test(monkeypatch, "tinyzoo", PublishedTinyZoo)
    results, site = tmp_path / "results", tmp_path / "site"
    records = {}
    for method in ("logme", "random_ranking"):
        spec = RunSpec(
            method=method, suite=suite, select="defaults", device="cpu",
            results_dir=results, progress=False,
        )  # fmt: skip
        records[method], _ = run(spec)
    build_site(results, site, warn=lambda line: None)
    page = (site / "transferability.html").read_text()
    assert "tinyzoo: weighted Kendall τ per target" in page
    assert "<script>alert" not in page
    assert 'href="transferability.html"' in (site / "index.html").read_text()
    rows = list(
        csv.DictReader(io.StringIO((site / "data" / "transferability-tinyzoo.csv").read_text()))
    )
    measured = {row["estimator"]: row for row in rows if row["source"] == "measured"}
    assert set(measured) == {"logme", "random_ranking"}
    for method, record in records.items():
        assert float(measured[method]["mean_tau_w"]) == record["average"]
        assert float(measured[method]["tau_w:alpha"]) == record["tasks"]["alpha"]["metric"]
        assert float(measured[method]["estimator_s"]) > 0
    published = [row for row in rows if row["source"] != "measured"]
    assert published[0]["estimator"] == "sfda" and float(published[0]["tau_w:beta"]) == 0.75
