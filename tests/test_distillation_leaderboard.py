"""The distillation page: budget curves beside the data-free merges, the table, and the
sentence that says where distillation overtakes merging (leaderboard/pages/distillation.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.run.records import write_record
from leaderboard.build import build_site
from tests.test_leaderboard import SCRIPT_NAME, SUITE, install_toy_registry, make_record, read_csv

KD_REFERENCE = "https://arxiv.org/abs/1907.04829"


def student(steps: int, metrics: tuple[float, float], seconds: float, **fixed: Any) -> dict:
    hyperparameters = {"steps": steps, "lr": 3e-4, "init": "pretrained", **fixed}
    record = make_record(
        "multi_teacher_kd",
        family="distillation",
        metrics=metrics,
        method_s=seconds,
        hyperparameters=hyperparameters,
        fixed=["steps", "lr", *fixed],
        reference=KD_REFERENCE,
        run_id=f"multi_teacher_kd__{SUITE}__{steps}__{'_'.join(map(str, fixed.values()))}",
    )
    record["method_info"] = {
        "distillation": {
            "steps": steps,
            "examples_seen": steps * 64,
            "teacher_forward_examples": min(steps * 64, 500),
            "cpu_s": 2 * seconds,
        },
        "inference_models": 1,
    }
    return record


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_toy_registry(monkeypatch)
    results = tmp_path / "results"
    # the toy experts score (90, 80): ties is 80/90, 60/80 → normalised 81.94
    write_record(results, make_record("ties", metrics=(80.0, 60.0), method_s=2.0))
    write_record(results, make_record("task_arithmetic", metrics=(75.0, 60.0), method_s=1.0))
    write_record(results, make_record("pretrained", family="baseline", metrics=(50.0, 40.0)))
    write_record(results, student(10, (70.0, 50.0), 5.0))
    write_record(results, student(100, (82.0, 66.0), 40.0))  # 86.8: beats ties
    write_record(results, student(1000, (88.0, 76.0), 400.0))
    write_record(results, student(100, (84.0, 70.0), 45.0, init="ties"))
    hostile = make_record("average_logit_kd", family="distillation", metrics=(60.0, 50.0))
    hostile["hyperparameters"] = {"steps": 10, "note": SCRIPT_NAME}
    hostile["method"]["name"] = SCRIPT_NAME
    hostile["selection"] = {"strategy": "fixed", "fixed": ["steps", "note"]}
    write_record(results, hostile)
    build_site(results, tmp_path / "site")
    return tmp_path / "site"


def test_the_page_draws_one_curve_per_setting_with_the_merges(site: Path):
    html = (site / "distillation" / f"{SUITE}.html").read_text()
    assert html.count('<g class="series"') == 2 * 3  # two plots × three curves
    assert 'data-method="multi_teacher_kd (init=ties)"' in html
    assert 'data-method="multi_teacher_kd (init=pretrained)"' in html
    assert html.count('class="merge"') == 2  # ties and task arithmetic on the seconds axis
    assert html.count('class="reference" data-method="ties"') == 1  # a line on the steps axis
    assert "<script>window.__pwned" not in html and "&lt;script&gt;" in html


def test_the_crossover_names_the_cheapest_student_that_beats_the_best_merge(site: Path):
    html = (site / "distillation" / f"{SUITE}.html").read_text()
    text = " ".join(html.split())
    assert "Best data-free merge: " in text and ">ties</a>, 81.94% normalised" in text
    assert "multi_teacher_kd (init=pretrained)</a> at 100 steps (86.81%, 40.0 s" in text


def test_the_table_has_normalised_mean_worst_and_compute(site: Path):
    rows = read_csv(site / "data" / f"distillation-{SUITE}.csv")
    by_steps = {
        (r["method"], r["steps"], r["setting"].count("init=ties")): r
        for r in rows
        if r["method"] == "multi_teacher_kd"
    }
    row = by_steps[("multi_teacher_kd", "1000.0", 0)]
    assert float(row["normalized_mean"]) == pytest.approx((88 / 90 + 76 / 80) * 50)
    assert row["worst_task"] == "b" and float(row["worst_normalized"]) == pytest.approx(95.0)
    assert float(row["examples_seen"]) == 64000 and float(row["cpu_s"]) == 800
    assert row["inference_models"] == "1"
    ties = next(r for r in rows if r["method"] == "ties")
    assert ties["steps"] == "" and ties["family"] == "merging"


def test_the_suite_page_links_the_distillation_page(site: Path):
    suite_html = (site / "suites" / f"{SUITE}.html").read_text()
    assert f"../distillation/{SUITE}.html" in suite_html


def test_no_page_without_distillation_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    install_toy_registry(monkeypatch)
    results = tmp_path / "results"
    write_record(results, make_record("ties"))
    build_site(results, tmp_path / "site")
    assert not (tmp_path / "site" / "distillation").exists()
    assert "distillation/" not in (tmp_path / "site" / "suites" / f"{SUITE}.html").read_text()


def test_an_inference_time_reference_is_drawn_but_is_not_the_crossover_student(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """dynamic_logit_fusion trains nothing: it keeps every expert at inference (its
    record's inference_models) and the crossover sentence only names trained students."""
    install_toy_registry(monkeypatch)
    results = tmp_path / "results"
    write_record(results, make_record("ties", metrics=(80.0, 60.0), method_s=2.0))
    write_record(results, student(100, (82.0, 66.0), 40.0))  # 86.8: beats ties
    fusion = make_record(
        "dynamic_logit_fusion",
        family="distillation",
        metrics=(89.0, 79.0),  # beats everything, at 0.1 s of method time
        method_s=0.1,
        hyperparameters={"alpha_max": 2.0},
        reference="https://arxiv.org/abs/2406.15480",
    )
    fusion["method_info"] = {"inference_models": 3, "forward_passes_per_token": 3}
    write_record(results, fusion)
    build_site(results, tmp_path / "site")
    text = " ".join((tmp_path / "site" / "distillation" / f"{SUITE}.html").read_text().split())
    assert "multi_teacher_kd</a> at 100 steps" in text
    rows = read_csv(tmp_path / "site" / "data" / f"distillation-{SUITE}.csv")
    reference = next(r for r in rows if r["method"] == "dynamic_logit_fusion")
    assert reference["inference_models"] == "3" and reference["steps"] == ""
