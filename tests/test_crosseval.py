"""The crosseval suite and ``harness judge meta`` on a fixture in CrossEval's schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.records import validation_errors
from harness.run.runner import RunSpec, run_cell
from tasks.text.crosseval import data
from tests.crosseval_fixture import (
    PROMPTS,
    ScriptedJudgeServer,
    build_mirror,
    rows,
    suite_options,
    write_csv,
)
from tests.harness_cli import invoke

SECRET = "sk-crosseval-test-secret-42"
TEXT_TASKS = [
    "english",
    "reasoning",
    "coding",
    "long_context",
    "spanish",
    "coding_reasoning",
    "spanish_reasoning",
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return build_mirror(tmp_path_factory.mktemp("crosseval-mirror"))


def test_the_data_module_knows_crossevals_schema_and_capabilities():
    assert len(data.CAPABILITIES) == 14 and len(data.CROSS) == 7
    assert data.CAPABILITIES["spanish_image"] == "Spanish & Image Recognition"
    assert data.PARENTS["long_context_coding"] == ("long_context", "coding")
    assert "response_3_human_2_explanation" in data.COLUMNS and len(data.COLUMNS) == 7 + 3 * 5


def test_a_malformed_csv_fails_in_one_line(tmp_path):
    partial = [c for c in data.COLUMNS if c not in ("response_2_human_1_rating", "difficulty")]
    path = write_csv(tmp_path / "a.csv", columns=partial)
    with pytest.raises(data.CrossEvalDataError, match="lacks the column.*difficulty, response_2_"):
        data.load_items(path)
    bad = rows()
    bad[2]["response_1_human_2_rating"] = "great"
    with pytest.raises(data.CrossEvalDataError, match=r"line 4 \(prompt_id 'p002'\).*'great'"):
        data.load_items(write_csv(tmp_path / "b.csv", bad))
    bad = rows()
    bad[0]["capability"] = "Juggling"
    with pytest.raises(data.CrossEvalDataError, match="unknown capability 'Juggling'"):
        data.load_items(write_csv(tmp_path / "c.csv", bad))
    (tmp_path / "d.csv").write_text('prompt_id,capability\n"p1,"English\n"oops')
    with pytest.raises(data.CrossEvalDataError, match="lacks the column"):
        data.load_items(tmp_path / "d.csv")


def test_eval_generates_judges_records_weakest_link_and_resumes_from_cache(
    mirror, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_JUDGE_KEY", SECRET)
    with ScriptedJudgeServer() as server:
        options = suite_options(server.spec("good", key_env="TEST_JUDGE_KEY", rpm="0"))
        spec = RunSpec(
            method="task_arithmetic",
            suite="crosseval",
            overrides={"scaling": 0.5},
            suite_options=options,
            mirror=mirror,
            results_dir=tmp_path / "results",
            progress=False,
        )
        first = run_cell(spec)
        asked = server.requests["good"]
        record = first.record
        assert validation_errors(record) == []
        assert record["suite"]["tasks"] == TEXT_TASKS  # images and tools filtered out
        english = record["tasks"]["english"]
        assert english["n"] == 2 and 1.0 <= english["metric"] <= 100.0
        details = english["details"]
        assert details["judge_outcomes"]["scored"] == 2 and details["judge_calls"] == 2
        assert {row["prompt_id"] for row in details["per_prompt"]} == {"p000", "p001"}
        assert all(
            row["rescaled"] == (row["score"] - 1) * 24.75 + 1 for row in details["per_prompt"]
        )
        samples = [json.loads(line) for line in Path(details["samples"]).read_text().splitlines()]
        assert len(samples) == 2 and "response" in samples[0]
        # the cross capability against its parents, and the summary over all of them
        link = record["tasks"]["spanish_reasoning"]["details"]["weakest_link"]
        assert link["parents"] == ["spanish", "reasoning"]
        assert link["min_parent"] == min(
            record["tasks"]["spanish"]["metric"], record["tasks"]["reasoning"]["metric"]
        )
        summary = record["suite"]["summary"]
        assert set(summary["weakest_link"]["cross"]) == {"coding_reasoning", "spanish_reasoning"}
        positions = [row["position"] for row in summary["weakest_link"]["cross"].values()]
        assert summary["weakest_link"]["below_both"] == positions.count("below_both")
        # filtered prompts are counted, per reason, never silently dropped
        unscored = summary["unscored_capabilities"]
        assert unscored["image"] == {"image": 1} and unscored["tool_use"] == {"needs_tools": 1}
        assert unscored["long_context_coding"] == {"attachment_missing": 1}
        assert "image_reasoning" in unscored  # no rows at all
        # the long-context prompt's attachment was read from the mirror and shown
        assert record["tasks"]["long_context"]["n"] == 1
        # the judge is an artifact; the key is nowhere
        judge = [a for a in record["artifacts"] if a["role"] == "judge"][0]
        assert judge["source"] == "endpoint" and judge["id"].startswith("openai:good@http")
        assert SECRET not in json.dumps(record)
        cache = Path(os.environ["HARNESS_CACHE"])
        assert all(SECRET not in p.read_text() for p in cache.rglob("*.jsonl"))
        # normalised against the best expert standing for each capability
        assert record["tasks"]["reasoning"]["individual"] is not None
        # a rerun pays for nothing: generations and judgments come from the cache
        again = run_cell(spec, overwrite=True).record
        assert server.requests["good"] == asked
        assert again["tasks"]["english"]["details"]["judge_calls"] == 0
        assert again["tasks"]["english"]["details"]["judgments_reused"] == 2
        assert again["tasks"]["english"]["metric"] == english["metric"]
        assert again["tasks"]["english"]["details"]["generated"] == 0


def test_crosseval_needs_a_judge_and_refuses_selection_without_a_validation_split(
    mirror, tmp_path, monkeypatch, capsys
):
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--method", "weight_average", "--tasks", "crosseval",
        "--mirror", str(mirror), "--results", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "crosseval needs a judge" in err
    options = suite_options("replay:crosseval-human")
    args = [f"--suite-set={k}={v}" for k, v in options.items() if k != "judge"]
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--method", "ties", "--tasks", "crosseval", "--only",
        "english", "--judge", "replay:crosseval-human", *args, "--mirror", str(mirror),
        "--results", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "crosseval has no validation split" in err
    assert len(err.strip().splitlines()) == 1


def test_judge_meta_with_human_ratings_replayed_correlates_perfectly(
    mirror, tmp_path, monkeypatch, capsys
):
    code, out, err = invoke(
        monkeypatch, capsys, "judge", "meta", "--judge", "replay:crosseval-human",
        "--mirror", str(mirror), "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    # each response judged with the other two as references; images left out, counted
    assert result["filtered"] == {"image": 3, "attachment_missing": 3}
    assert result["responses"] == 3 * (len(PROMPTS) - 2)
    assert result["overall"]["pearson"] == pytest.approx(1.0)
    assert result["overall"]["spearman"] == pytest.approx(1.0)
    assert result["published"]["judges"][0] == {
        "judge": "GPT-4o", "pearson": 0.697, "spearman": 0.679, "kendall": 0.56,
    }  # fmt: skip
    assert "paper: GPT-4o" in out and "overall" in out


def test_judge_meta_killed_midway_resumes_asking_only_for_the_rest(mirror, tmp_path):
    """SIGKILL the command after its 7th judge request; the rerun asks only for the rest."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env["HARNESS_CACHE"] = str(tmp_path / "cache")
    only = "english,reasoning,spanish,spanish_reasoning"  # 8 prompts, 24 responses
    with ScriptedJudgeServer() as server:
        command = [
            sys.executable, "-m", "harness", "judge", "meta", "--judge",
            server.spec("good", rpm="0", concurrency="1"), "--only", only, "--mirror", str(mirror),
            "--out", str(tmp_path / "out"), "--quiet",
        ]  # fmt: skip
        process: list[subprocess.Popen] = []

        def kill_at_eighth(count: int) -> None:
            if count == 8:
                os.kill(process[0].pid, signal.SIGKILL)

        server.on_request = kill_at_eighth
        process.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE))
        _, err = process[0].communicate(timeout=300)
        assert process[0].returncode == -signal.SIGKILL, err.decode()[-500:]
        assert server.requests["good"] == 8
        server.on_request = None
        done = subprocess.run(command, env=env, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()[-500:]
        assert server.requests["good"] == 8 + (24 - 7)  # the 8th answer never arrived
    (path,) = (tmp_path / "out").glob("*.json")
    result = json.loads(path.read_text())
    assert result["judge_calls"] == 17 and result["judgments_reused"] == 7
    assert result["judge_outcomes"]["scored"] == 24


def test_the_leaderboard_shows_judge_results_beside_the_published_judges(
    mirror, tmp_path, monkeypatch, capsys
):
    from leaderboard.build import build_site

    judges = tmp_path / "judges"
    code, _, err = invoke(
        monkeypatch, capsys, "judge", "meta", "--judge", "replay:crosseval-human",
        "--only", "english,reasoning", "--mirror", str(mirror), "--out", str(judges), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    (path,) = judges.glob("*.json")
    hostile = json.loads(path.read_text())
    hostile["judge"]["identity"] = "<script>window.__pwned=1</script>"
    (judges / "hostile.json").write_text(json.dumps(hostile))
    (judges / "notes.json").write_text('{"kind": "something else"}')
    (tmp_path / "results").mkdir()
    skipped: list[str] = []
    index = build_site(
        tmp_path / "results", tmp_path / "site", judges_dir=judges, warn=skipped.append
    )
    page = (index.parent / "judges.html").read_text()
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned" in page
    assert "replay:crosseval-human" in page and "GPT-4o" in page and "0.697" in page
    assert "1.000" in page  # the human ratings replayed agree with themselves
    assert 'href="judges.html"' in index.read_text()
    assert len(skipped) == 1 and "notes.json" in skipped[0]
    rows = json.loads((index.parent / "data" / "judges.json").read_text())["rows"]
    assert {row["source"] for row in rows} == {"measured", "paper"}


def test_individual_scores_a_cross_capability_with_its_skill_expert_and_carve_selects(
    mirror, tmp_path
):
    with ScriptedJudgeServer() as server:
        options = {**suite_options(server.spec("good", rpm="0")), "validation": "carve"}
        individual = run_cell(
            RunSpec(
                method="individual",
                suite="crosseval",
                suite_options=options,
                only=["reasoning", "spanish", "spanish_reasoning"],
                mirror=mirror,
                results_dir=tmp_path,
                progress=False,
            )
        ).record
        cross = individual["tasks"]["spanish_reasoning"]
        # scored by the Spanish expert (the first standing for a parent); its reference is
        # the best of the Spanish and math experts, so normalised is at most 100
        assert cross["individual"] >= cross["metric"] and cross["normalized"] <= 100.0
        assert individual["suite"]["splits"]["validation"].startswith("a fixed 10%")
        selected = run_cell(
            RunSpec(
                method="magmax",  # four scalings tried on the carve
                suite="crosseval",
                suite_options=options,
                only=["english", "spanish"],
                mirror=mirror,
                results_dir=tmp_path,
                progress=False,
            )
        ).record
        assert selected["selection"]["strategy"] == "grid"
        assert len(selected["selection"]["candidates"]) == 4
        assert all(entry["n"] == 1 for entry in selected["tasks"].values())  # 2 prompts, 1 held out


def test_a_malformed_dataset_stops_the_command_in_one_line(tmp_path, monkeypatch, capsys):
    broken = [{k: v for k, v in row.items() if k != "l2_category"} for row in rows()]
    columns = [c for c in data.COLUMNS if c != "l2_category"]
    write_csv(tmp_path / "datasets" / data.DATASET / data.FILE, broken, columns=columns)
    code, _, err = invoke(
        monkeypatch, capsys, "judge", "meta", "--judge", "replay:crosseval-human",
        "--mirror", str(tmp_path), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "lacks the column(s) l2_category" in err and not (tmp_path / "out").exists()


def test_expert_count_is_checked_on_the_pool_not_on_the_capabilities() -> None:
    """crosseval's 14 tasks are capabilities, not experts: a two-expert method (slerp)
    passes the up-front check there; on a suite whose tasks are its experts it is refused."""
    from harness.errors import HarnessError
    from harness.run.runner import RunSpec

    RunSpec(method="slerp", suite="crosseval", select="defaults").entries()
    with pytest.raises(HarnessError, match="slerp"):
        RunSpec(method="slerp", suite="mini8", select="defaults").entries()
