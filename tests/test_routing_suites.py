"""Outcome-table suites read from a mirror in the releases' real formats, run end to end
through ``harness eval`` into a normal record (RouterDC's JSON, RouteLLM's CSV,
RouterBench's pickle after an explicit conversion), and the offline mini8 table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.harness_cli import invoke

ROUTERDC_MODELS = [
    "mistralai/Mistral-7B-v0.1",
    "meta-math/MetaMath-Mistral-7B",
    "itpossible/Chinese-Mistral-7B-v0.1",
    "HuggingFaceH4/zephyr-7b-beta",
    "cognitivecomputations/dolphin-2.6-mistral-7b",
    "meta-llama/Meta-Llama-3-8B",
    "cognitivecomputations/dolphin-2.9-llama3-8b",
]


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))]


def _routerdc_mirror(root: Path) -> Path:
    """RouterDC's release layout: datasets/split2_model7{,_cluster}/<task>.json."""
    base = root / "datasets" / "shuhao02" / "RouterDC" / "datasets"
    rng = np.random.default_rng(0)
    from tasks.routing.routerdc import TASKS

    for task, (train, test, _) in TASKS.items():
        for name, count, folder in (
            (train, 12, "split2_model7_cluster"),
            (test, 6, "split2_model7"),
        ):
            if name is None:
                continue
            items = []
            for i in range(count):
                # the Llama-3 models are right on even questions, the Mistral ones on odd
                scores = {
                    m: float(rng.uniform(0.3, 1.0))
                    if ("llama3" in m.lower() or "Llama-3" in m) == (i % 2 == 0)
                    else 0
                    for m in ROUTERDC_MODELS
                }
                topic = "llamas and alpacas" if i % 2 == 0 else "winds of the mistral"
                item = {
                    "question": f"Question: {task} {i} about {topic}\nAnswer:",
                    "scores": scores,
                }
                if folder.endswith("cluster"):
                    item["cluster_id"] = i % 3
                items.append(item)
            path = base / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(items))
    return root


def test_routerdc_from_a_mirror_into_a_record(tmp_path, monkeypatch, capsys):
    mirror = _routerdc_mirror(tmp_path / "mirror")
    results = tmp_path / "results"
    code, _, err = invoke(
        monkeypatch,
        capsys,
        "eval",
        "--method",
        "knn_router",
        "--tasks",
        "routerdc",
        "--mirror",
        str(mirror),
        "--results",
        str(results),
        "--quiet",
        "--set",
        "k=5",
    )
    assert code == 0, err
    (record,) = _records(results)
    assert record["method"]["family"] == "routing"
    assert set(record["tasks"]) == {
        "mmlu",
        "gsm8k",
        "cmmlu",
        "arc_challenge",
        "humaneval",
        "math_prealgebra",
        "mbpp",
        "ceval",
    }
    summary = record["suite"]["summary"]
    assert {"aiq", "apgr", "cpt50", "cpt80", "curve", "models", "per_task"} <= set(summary)
    # probability tasks are scored right/wrong: the oracle is 100% on them
    assert summary["per_task"]["mmlu"]["n"] == 6
    models = {m["model"]: m for m in summary["models"]}
    assert models["meta-llama/Meta-Llama-3-8B"]["cost"] == pytest.approx(8.03)
    # kNN on the embedded questions finds the right family on most test questions
    assert record["average"] >= 70.0
    assert record["tasks"]["mmlu"]["individual"] is not None
    assert record["artifacts"][0]["id"] == "shuhao02/RouterDC"
    assert record["suite"]["checkpoint_set"] == "shuhao02/RouterDC"  # published numbers' key
    from leaderboard.build import build_site

    build_site(results, tmp_path / "site")
    page = (tmp_path / "site" / "suites" / "routerdc.html").read_text()
    assert "60.23" in page  # RouterDC's published mean (4 tasks) in the published table


def test_routerdc_missing_from_the_mirror_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "mirror").mkdir()
    code, _, err = invoke(
        monkeypatch,
        capsys,
        "eval",
        "--method",
        "knn_router",
        "--tasks",
        "routerdc",
        "--mirror",
        str(tmp_path / "mirror"),
        "--results",
        str(tmp_path / "r"),
        "--quiet",
    )
    assert code == 2 and "shuhao02/RouterDC" in err
    assert not (tmp_path / "r").exists() or not _records(tmp_path / "r")


def test_merging_methods_are_refused_on_outcome_suites(tmp_path, monkeypatch, capsys):
    code, _, err = invoke(
        monkeypatch,
        capsys,
        "eval",
        "--method",
        "ties",
        "--tasks",
        "routellm-gsm8k",
        "--results",
        str(tmp_path),
        "--quiet",
    )
    assert code == 2 and "only routing methods" in err


def _routellm_mirror(root: Path, count: int = 40) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(count):
        hard = i % 4 == 0  # Mixtral fails the hard (long) ones, GPT-4 mostly not
        prompt = (
            f"Question {i}: a long, multi-step word problem, with commas, about trains"
            if hard
            else f"Question {i}: add two numbers"
        )
        rows.append(
            {
                "prompt": prompt,
                "mixtral-8x7b-instruct-v0.1": (not hard) and rng.random() < 0.9,
                "gpt-4-1106-preview": rng.random() < 0.95,
                "mixtral-8x7b-instruct-v0.1_response": "step 1,\n#### 18",
                "gpt-4-1106-preview_response": 'so "18"',
            }
        )
    path = root / "datasets" / "lm-sys" / "RouteLLM" / "routellm" / "evals" / "gsm8k"
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "gsm8k_responses.csv", index=False)
    return root


def test_routellm_gsm8k_apgr_and_cpt_in_the_record(tmp_path, monkeypatch, capsys):
    mirror = _routellm_mirror(tmp_path / "mirror")
    results = tmp_path / "results"
    code, _, err = invoke(
        monkeypatch,
        capsys,
        "eval",
        "--method",
        "oracle_router",
        "--tasks",
        "routellm-gsm8k",
        "--mirror",
        str(mirror),
        "--results",
        str(results),
        "--quiet",
    )
    assert code == 0, err
    (record,) = _records(results)
    summary = record["suite"]["summary"]
    assert summary["weak"] == "mixtral-8x7b-instruct-v0.1"
    assert summary["strong"] == "gpt-4-1106-preview"
    assert record["tasks"]["gsm8k"]["n"] == 20  # the fixed test half
    # the oracle calls GPT-4 only where Mixtral fails: cost = that fraction of queries
    assert summary["cost"] <= 0.5
    assert summary["apgr"] >= 0.5 and summary["cpt50"] <= 50.0


def _routerbench_pickle(root: Path) -> Path:
    models = ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"]
    rows = []
    for i in range(30):
        math = i % 2 == 0
        row = {
            "sample_id": f"{'gsm8k' if math else 'hellaswag'}.{i}",
            "prompt": [f"solve {i} + {i}"] if math else f"finish the sentence {i}",
            "eval_name": "gsm8k" if math else "hellaswag",
            "oracle_model_to_route_to": models[0],
        }
        for m, cost in zip(models, (0.01, 0.0002)):
            row[m] = 1.0 if (m == models[0] or not math) else 0.0
            row[f"{m}|model_response"] = "answer"
            row[f"{m}|total_cost"] = cost
        rows.append(row)
    folder = root / "datasets" / "withmartian" / "routerbench"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_pickle(folder / "routerbench_0shot.pkl")
    return folder / "routerbench_0shot.pkl"


def test_routerbench_needs_an_explicit_conversion_of_its_pickle(tmp_path, monkeypatch, capsys):
    pickle = _routerbench_pickle(tmp_path / "mirror")
    args = ["--mirror", str(tmp_path / "mirror"), "--results", str(tmp_path / "r"), "--quiet"]
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--method", "knn_router", "--tasks", "routerbench", *args
    )
    assert code == 2 and "harness convert routerbench" in err and "--allow-pickle" in err
    code, _, err = invoke(monkeypatch, capsys, "convert", "routerbench", str(pickle))
    assert code == 2 and "runs code" in err
    assert not pickle.with_suffix(".parquet").exists()
    code, out, err = invoke(
        monkeypatch, capsys, "convert", "routerbench", str(pickle), "--allow-pickle"
    )
    assert code == 0, err
    code, _, err = invoke(
        monkeypatch,
        capsys,
        "eval",
        "--method",
        "knn_router",
        "--tasks",
        "routerbench",
        "--set",
        "k=3",
        *args,
    )
    assert code == 0, err
    (record,) = _records(tmp_path / "r")
    summary = record["suite"]["summary"]
    assert summary["cost_unit"] == "dollars per query"
    assert set(record["tasks"]) == {"gsm8k", "hellaswag"}
    # kNN sends hellaswag to the cheap model (right there) and gsm8k to GPT-4
    assert record["average"] == pytest.approx(100.0)
    assert summary["cost"] < 0.01


@pytest.mark.slow
def test_mini8_outcomes_every_router(tmp_path, monkeypatch, capsys):
    """The real table: nine mini8 models scored per item (builds mini8 when not cached)."""
    from harness.registry import METHODS

    results = tmp_path / "results"
    routers = [n for n in METHODS.names() if "outcomes" in METHODS.get(n).needs]
    for name in ("oracle_router", "best_single", "mlp_router", "random_router"):
        assert name in routers
        code, _, err = invoke(
            monkeypatch,
            capsys,
            "eval",
            "--method",
            name,
            "--tasks",
            "mini8-outcomes",
            "--results",
            str(results),
            "--quiet",
            "--select",
            "defaults",
        )
        assert code == 0, err
    by_method = {r["method"]["name"]: r for r in _records(results)}
    accuracy = {name: r["suite"]["summary"]["accuracy"] for name, r in by_method.items()}
    assert accuracy["oracle_router"] >= accuracy["mlp_router"] >= accuracy["random_router"]
    # measured 48.8 vs 46.5: the pretrained features tell the task apart only in part
    assert accuracy["mlp_router"] > accuracy["best_single"]
    table_models = [m["model"] for m in by_method["mlp_router"]["suite"]["summary"]["models"]]
    assert table_models[0] == "pretrained" and len(table_models) == 9


def _embedllm_mirror(root: Path) -> Path:
    folder = root / "datasets" / "RZ412" / "EmbedLLM"
    folder.mkdir(parents=True)
    pd.DataFrame({"model_id": [0, 1, 2], "model_name": ["small-math", "small-chat", "big"]}).to_csv(
        folder / "model_order.csv", index=False
    )
    prompt_id = 0
    for split, count in (("train", 24), ("val", 6), ("test", 10)):
        rows = []
        for i in range(count):
            math = i % 2 == 0
            prompt = f"compute the sum {i} plus {i}" if math else f"tell me a story about {i} cats"
            for model in (0, 1, 2):
                right = model == 2 or (model == 0) == math
                rows.append(
                    {
                        "model_id": model,
                        "prompt_id": prompt_id,
                        "prompt": prompt,
                        "label": int(right),
                    }
                )
            prompt_id += 1
        pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)
    pd.DataFrame({"prompt_id": range(prompt_id)}).to_csv(folder / "question_order.csv", index=False)
    return root


def test_embedllm_long_csvs_pivot_into_a_table(tmp_path, monkeypatch, capsys):
    mirror = _embedllm_mirror(tmp_path / "mirror")
    results = tmp_path / "results"
    code, _, err = invoke(
        monkeypatch,
        capsys,
        "eval",
        "--method",
        "best_single",
        "--tasks",
        "embedllm",
        "--mirror",
        str(mirror),
        "--results",
        str(results),
        "--quiet",
    )
    assert code == 0, err
    (record,) = _records(results)
    summary = record["suite"]["summary"]
    assert [m["model"] for m in summary["models"]] == ["small-math", "small-chat", "big"]
    assert record["tasks"]["all"]["n"] == 10
    assert summary["accuracy"] == 100.0 and summary["choices"]["big"] == 10
