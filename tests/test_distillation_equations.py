"""The distillation equations on hand-made numbers (harness/distillation)."""

from __future__ import annotations

import math

import pytest
import torch

from harness.distillation.budget import epoch_order
from harness.distillation.loop import warmup_cosine
from harness.distillation.losses import (
    feature_loss,
    fuse_token_distributions,
    fusellm_loss,
    kd_loss,
)


def test_kd_loss_is_t_squared_kl_of_softened_distributions():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0 * math.log(3.0), 0.0]])  # at T = 2: p = (3/4, 1/4)
    p = torch.tensor([0.75, 0.25])
    kl = float((p * (p / 0.5).log()).sum())  # student at T = 2: (1/2, 1/2)
    assert kd_loss(student, teacher, 2.0).item() == pytest.approx(4.0 * kl, rel=1e-6)
    assert kd_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_loss_averages_over_the_batch():
    a = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    rows = [kd_loss(a[i : i + 1], b[i : i + 1], 1.5) for i in range(2)]
    assert kd_loss(a, b, 1.5).item() == pytest.approx(float(sum(rows) / 2), rel=1e-6)


def test_feature_loss_is_the_mean_squared_error():
    assert feature_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0]])).item() == 5.0


def test_fusion_picks_the_teacher_with_the_lowest_cross_entropy_per_token():
    # two teachers, one sequence of two tokens, vocabulary of three; gold tokens 0 then 2
    first = torch.tensor([[[5.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    second = torch.tensor([[[0.0, 5.0, 0.0], [0.0, 0.0, 5.0]]])
    gold = torch.tensor([[0, 2]])
    fused = fuse_token_distributions(torch.stack([first, second]), gold)
    assert torch.equal(fused[0, 0], first[0, 0])  # token 0: the first teacher is right
    assert torch.equal(fused[0, 1], second[0, 1])  # token 1: the second is


def test_fusellm_loss_is_point_nine_lm_plus_point_one_kd():
    teachers = torch.tensor([[[[4.0, 0.0]]], [[[0.0, 4.0]]]])  # [K=2, B=1, L=1, V=2]
    gold = torch.tensor([[1]])
    student = torch.tensor([[[1.0, 0.0]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    log_s = torch.log_softmax(student[0, 0], dim=-1)
    fused = torch.softmax(teachers[1, 0, 0], dim=-1)  # the second teacher is picked
    lm = -log_s[1]
    kd = -(fused * log_s).sum()
    expected = 0.9 * lm + 0.1 * kd
    assert fusellm_loss(student, teachers, gold, mask).item() == pytest.approx(expected.item())
    masked = fusellm_loss(student, teachers, gold, torch.zeros(1, 1, dtype=torch.bool))
    assert masked.item() == 0.0


def test_warmup_then_cosine():
    factor = warmup_cosine(10, 0.2)  # two warmup steps
    assert [factor(0), factor(1)] == [0.5, 1.0]
    assert factor(2) == pytest.approx(1.0)
    assert factor(6) == pytest.approx(0.5)  # half-way through the 8 decay steps
    assert warmup_cosine(4, 0.0)(0) == 1.0


def test_epochs_are_seeded_permutations():
    order = epoch_order(3, 7, torch.Generator().manual_seed(0))
    assert len(order) == 7
    assert sorted(order[:3]) == [0, 1, 2] and sorted(order[3:6]) == [0, 1, 2]
    assert order == epoch_order(3, 7, torch.Generator().manual_seed(0))


def test_batches_of_one_shape_run_in_one_call_and_split_back():
    from harness.distillation.batching import chunks, forward_batches

    calls = []

    def model(x):
        calls.append(len(x))
        return 2 * x

    parts = [torch.ones(2, 3), torch.zeros(1, 3)]
    outputs = forward_batches(model, parts, torch.device("cpu"))
    assert calls == [3] and [o.shape[0] for o in outputs] == [2, 1]
    assert torch.equal(outputs[0], 2 * parts[0])
    calls.clear()
    forward_batches(model, [torch.ones(2, 3), torch.ones(2, 4)], torch.device("cpu"))
    assert calls == [2, 2]  # different lengths: one call each
    assert chunks([3, 3, 3, 5, 1], 6) == [[0, 1], [2], [3, 4]]
