"""Merge-ability prediction: pool statistics by hand, signals that do and do not predict,
and ``harness transfer mergeability`` end to end on merges of the tiny suite."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from harness.transferability import mergeability as mb
from harness.weights.pool import Checkpoint, ExpertPool
from tests.harness_cli import invoke


def _pool(tmp_path, base: dict, experts: dict[str, dict]) -> ExpertPool:
    save_file(base, str(tmp_path / "base.safetensors"))
    checkpoints = {}
    for task, state in experts.items():
        save_file(state, str(tmp_path / f"{task}.safetensors"))
        checkpoints[task] = Checkpoint(tmp_path / f"{task}.safetensors", task)
    return ExpertPool(Checkpoint(tmp_path / "base.safetensors", "base"), checkpoints)


def test_pool_statistics_by_hand(tmp_path):
    """τ_a = [1, −2, 0], τ_b = [1, 1, 3], no trim: elected signs [+, −, +]; b loses the
    election at entry 1; entry 1 holds both signs; all three entries are touched."""
    base = {"w": torch.tensor([0.5, 0.5, 0.5])}
    pool = _pool(
        tmp_path,
        base,
        {"a": {"w": torch.tensor([1.5, -1.5, 0.5])}, "b": {"w": torch.tensor([1.5, 1.5, 3.5])}},
    )
    stats = mb.pool_statistics(pool, density=1.0, progress=False)
    assert np.allclose(stats.gram, [[5.0, -1.0], [-1.0, 11.0]])
    assert stats.kept == [2.0, 3.0] and stats.lost == [0.0, 1.0]
    assert (stats.conflicted, stats.touched) == (1.0, 3.0)
    record = stats.record_signals()
    assert record["cosine"] == pytest.approx(-1 / math.sqrt(55))
    assert record["sign_conflict"] == pytest.approx(1 / 3)
    norms = np.sqrt([5.0, 11.0])
    assert record["norm_spread"] == pytest.approx(norms.std() / norms.mean())
    tasks = stats.task_signals()
    assert tasks["b"]["sign_conflict"] == pytest.approx(1 / 3)
    assert tasks["a"]["sign_conflict"] == 0.0
    assert tasks["a"]["norm_spread"] == pytest.approx(abs(math.log(11) - math.log(5)) / 4)


def test_pool_statistics_match_a_direct_computation_with_trimming(tmp_path):
    """Two tensors, a matrix streamed in row slices, TIES' top-20% trim over the model."""
    generator = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(30, 8, generator=generator), "b": torch.randn(11, generator=generator)}
    experts = {
        task: {name: t + torch.randn(t.shape, generator=generator) for name, t in base.items()}
        for task in "abcd"
    }
    pool = _pool(tmp_path, base, experts)
    pool.chunk_elements = 64  # stream w in slices of 8 rows
    stats = mb.pool_statistics(pool, density=0.2, progress=False)
    vectors = np.stack(
        [
            np.concatenate([(experts[t][n] - base[n]).reshape(-1).numpy() for n in ("w", "b")])
            for t in "abcd"
        ]
    ).astype(np.float64)
    keep = math.ceil(0.2 * vectors.shape[1])
    thresholds = np.sort(np.abs(vectors), axis=1)[:, -keep]
    kept = np.abs(vectors) >= thresholds[:, None]
    trimmed = vectors * kept
    elected = np.sign(trimmed.sum(axis=0))
    assert np.allclose(stats.gram, vectors @ vectors.T, rtol=1e-5)
    assert stats.kept == kept.sum(axis=1).tolist() == [keep] * 4
    assert stats.lost == (kept & (np.sign(trimmed) * elected < 0)).sum(axis=1).tolist()
    both = (trimmed > 0).any(axis=0) & (trimmed < 0).any(axis=0)
    assert stats.conflicted == both.sum() and stats.touched == kept.any(axis=0).sum()


def test_a_signal_built_to_predict_ranks_merges_and_an_unrelated_one_does_not(tmp_path):
    """Twelve generated tasks share a direction to a degree chosen per task; each merge's
    accuracy on a task follows that degree. Cosine measures it (τ_w near 1); the norm is
    chosen unrelated to it (τ_w near 0); sign conflict (negated) follows the alignment, but
    large random norms also win elections, so it ranks less well than the cosine."""
    generator = torch.Generator().manual_seed(3)
    size, tasks = 4000, [f"t{i}" for i in range(12)]
    shared = torch.randn(size, generator=generator)
    alignment = torch.linspace(0.0, 0.9, len(tasks))[
        torch.randperm(len(tasks), generator=generator)
    ]
    # norms unrelated to the alignment: log-norms ±1 and ±0.5 (two |deviations|) in an
    # a b b a pattern along the alignment order, so neither half is favoured
    pattern = torch.tensor([1.0, 0.5, -0.5, -1.0, 0.5, 1.0, -1.0, -0.5, 1.0, 0.5, -0.5, -1.0])
    scales = torch.exp(pattern[torch.argsort(torch.argsort(alignment))])
    base = {"w": torch.zeros(size)}
    experts = {}
    for index, task in enumerate(tasks):
        own = torch.randn(size, generator=generator)
        direction = alignment[index] * shared + math.sqrt(1 - alignment[index] ** 2) * own
        experts[task] = {"w": scales[index] * direction}
    stats = mb.pool_statistics(_pool(tmp_path, base, experts), progress=False)
    signals = stats.task_signals()
    points = [
        mb.MergePoint(f"run{r}", "m", {}, task, 60 + 30 * float(alignment[i]) + r, signals[task])
        for r in range(3)
        for i, task in enumerate(tasks)
    ]
    scores = mb.score_points(points, mb.POOL_SIGNALS, mb.ORIENTATION)
    assert scores["cosine"]["tau_w"] > 0.8 and scores["cosine"]["pearson"] > 0.8
    assert 0 < scores["sign_conflict"]["tau_w"] < scores["cosine"]["tau_w"]
    assert abs(scores["norm_spread"]["tau_w"]) < 0.4
    assert scores["cosine"]["n"] == 36
    constant = mb.score_points(
        [mb.MergePoint(f"r{i}", "m", {}, None, float(i), {"cosine": 0.5}) for i in range(4)],
        ["cosine"],
        mb.ORIENTATION,
    )
    assert constant["cosine"]["constant"] and constant["cosine"]["tau_w"] is None


@pytest.fixture
def run_cli(monkeypatch, capsys, tiny_suite_name):
    return lambda *args: invoke(monkeypatch, capsys, *args)


def test_mergeability_command_on_real_merges_of_the_tiny_suite(run_cli, tmp_path, isolated_cache):
    results, out = tmp_path / "results", tmp_path / "mb"
    for scaling in ("0.1", "0.5", "1.0"):
        code, _, err = run_cli(
            "eval", "--method", "task_arithmetic", "--tasks", "tiny3", "--set",
            f"scaling={scaling}", "--select", "defaults", "--results", str(results), "--quiet",
        )  # fmt: skip
        assert code == 0, err
    code, _, err = run_cli("eval", "--method", "pretrained", "--tasks", "tiny3",
                           "--results", str(results), "--quiet")  # fmt: skip
    assert code == 0, err
    # a merge made on another build of the suite: its pool is not this one, so it is skipped
    source = next(results.rglob("task_arithmetic__*.json"))
    other = json.loads(source.read_text())
    other["suite"]["checkpoint_set"] = "built:tiny-older"
    other["run_id"] = other["run_id"][:-8] + "0ld0ld00"
    (source.parent / f"{other['run_id']}.json").write_text(json.dumps(other))
    args = ("transfer", "mergeability", "--results", str(results), "--out", str(out), "--quiet")
    code, stdout, err = run_cli(*args, "--examples", "40")
    assert code == 0, err
    assert "tiny3: 3 merge records (1 skipped: another build)" in stdout and "logme" in stdout
    result = json.loads((out / "tiny3.json").read_text())
    assert result["kind"] == "mergeability" and result["estimator"] == "logme"
    assert len(result["points"]["record"]) == 3 and len(result["points"]["task"]) == 9
    assert {p["method"] for p in result["points"]["record"]} == {"task_arithmetic"}
    assert result["skipped"][0].startswith(other["run_id"])
    record = result["scores"]["record"]
    assert all(record[s]["constant"] for s in mb.POOL_SIGNALS)  # one pool, one task set
    logme = [p["signals"]["logme"] for p in result["points"]["record"]]
    assert len(set(logme)) == 3 and all(np.isfinite(logme))  # three merges, three features
    assert result["scores"]["task"]["logme"]["n"] == 9
    # features are cached: a second run rebuilds nothing and gives the same numbers
    cached = sorted((isolated_cache / "mergeability").iterdir())
    code, _, err = run_cli(*args, "--examples", "40")
    assert code == 0, err
    assert sorted((isolated_cache / "mergeability").iterdir()) == cached
    assert json.loads((out / "tiny3.json").read_text())["scores"] == result["scores"]
    # data-free signals only
    code, stdout, err = run_cli(*args, "--estimator", "none")
    assert code == 0, err and "logme" not in stdout


def test_mergeability_command_errors_are_one_line(run_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (("--results", str(tmp_path / "missing")), "does not exist"),
        (("--results", str(empty)), "holds no merge records"),
        (("--results", str(empty), "--tasks", "nope"), "nope"),
        (("--results", str(empty), "--estimator", "leep"), "source probs"),
        (("--results", str(empty), "--estimator", "ties"), "not a transferability estimator"),
    ]
    for args, message in cases:
        code, _, err = run_cli("transfer", "mergeability", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_leaderboard_page_shows_each_suites_signal_table(tmp_path):
    from leaderboard.build import build_site

    points = [
        mb.MergePoint(f"r{i}", "m", {}, None, 80.0 + i, {"cosine": 0.1, "logme": -1.0 + i})
        for i in range(3)
    ]
    scores = {level: mb.score_points(points, ["cosine", "logme"], mb.ORIENTATION)
              for level in mb.LEVELS}  # fmt: skip
    result = mb.SuiteMergeability(
        "<script>x</script>", "built:x", "logme", 40, 0.2,
        {"record": points, "task": points}, scores, [],
    )  # fmt: skip
    out = tmp_path / "mergeability"
    mb.write_result(result, out)
    (out / "junk.json").write_text('{"kind": "other"}')
    results, site = tmp_path / "results", tmp_path / "site"
    results.mkdir()
    warnings: list[str] = []
    build_site(results, site, warn=warnings.append, mergeability_dir=out)
    page = (site / "mergeability.html").read_text()
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    assert "const" in page  # cosine is the same for every point
    assert 'href="mergeability.html"' in (site / "index.html").read_text()
    assert any("junk.json" in line for line in warnings)
    (csv_file,) = (site / "data").glob("mergeability-*.csv")
    text = csv_file.read_text()
    assert "logme" in text and "1.0" in text  # logme ranks the three merges perfectly
