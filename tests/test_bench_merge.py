"""``harness bench merge`` on a tiny real-shaped architecture: rows, skips, and memory."""

from __future__ import annotations

import torch
from click.testing import CliRunner

import harness.bench.merge as bench


def test_bench_merge_measures_data_free_methods_and_skips_data_based_ones(monkeypatch):
    monkeypatch.setitem(
        bench.ARCHS, "tiny-vit", bench.Architecture(bench._vit(16, 1, 2, 16), torch.float32, 1, 1)
    )
    shapes = bench.architecture_shapes("tiny-vit")
    assert "encoder.layers.0.mlp.fc1.weight" in {n.removeprefix("vision_model.") for n in shapes}
    methods = ["weight_average", "tall_masks", "regmean"]
    run = bench.bench_merge(methods, "tiny-vit", 2)
    rows = run.rows
    measured, per_task, skipped = rows
    expected = sum(torch.Size(s).numel() for s, d in shapes.values() if d.is_floating_point)
    assert measured.method == "weight_average" and measured.output_params == expected
    assert measured.seconds > 0 and measured.peak_rss_mib > 0 and measured.merge_rss_mib >= 0
    # a per-task method is timed up to its first task's model, not 0 s for a lazy closure
    assert per_task.output_params == expected and per_task.seconds > 0
    assert "per-task" in per_task.note
    assert skipped.seconds is None and "needs data" in skipped.note
    lines = bench.format_table(run, 1)
    assert lines[0].split()[:4] == ["method", "arch", "experts", "seconds"]


def test_bench_merge_rejects_unknown_names():
    from harness.cli import cli

    result = CliRunner().invoke(cli, ["bench", "merge", "--methods", "nope", "--arch", "vit-b-32"])
    assert result.exit_code != 0
    assert "unknown method" in str(result.exception or result.output)


def test_bench_merge_json_keeps_stdout_json_and_reports_progress_on_stderr(monkeypatch):
    """A long --json run still says each method's figures as they come (on stderr)."""
    import json

    from harness.cli import cli

    tiny = bench.Architecture(bench._vit(16, 1, 2, 16), torch.float32, 1, 1)
    monkeypatch.setitem(bench.ARCHS, "vit-b-32", tiny)  # the CLI's --arch is a fixed choice
    result = CliRunner().invoke(
        cli, ["bench", "merge", "--methods", "weight_average", "--arch", "vit-b-32", "--json"]
    )
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert [row["method"] for row in described["rows"]] == ["weight_average"]
    assert "weight_average: " in result.stderr and "CPU s), peak RSS" in result.stderr
