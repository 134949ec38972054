"""`harness bench eval`: both pipelines run on the same images and the ratio is printed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness.bench.eval import bench_eval
from harness.cli import cli


def test_bench_measures_both_pipelines_on_cpu(tmp_path):
    result = bench_eval("tiny", images=24, device="cpu", workers=0, scratch=tmp_path)
    assert result.images == 24 and result.fast_dtype == "fp32"
    assert result.plain_images_per_s > 0 and result.fast_images_per_s > 0
    assert result.ratio == pytest.approx(result.fast_images_per_s / result.plain_images_per_s)
    lines = "\n".join(result.lines())
    assert "speed-up" in lines and "projected vit8" in lines


def test_bench_cli_refuses_cuda_without_a_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    outcome = CliRunner().invoke(
        cli, ["bench", "eval", "--device", "cuda", "--images", "2"], standalone_mode=False
    )
    assert "--device cpu" in str(outcome.exception)
