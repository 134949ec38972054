"""Fixes from the independent parity check against FusionBench, mergekit and the authors'
code: each test pins the corrected rule on a hand-computable example (the working is in
the comments), so a regression to the old rule fails."""

from __future__ import annotations

import math

import pytest
import torch

from harness.merging.sparsify import magnitude_band_mask, magprune
from harness.registry import METHODS
from harness.weights.pool import TensorGroup
from methods.merging.breadcrumbs import breadcrumbs
from methods.merging.slerp import DOT_THRESHOLD, slerp_tensors
from methods.merging.ties import elect_and_disjoint_mean


def group(base, *experts, name="w", seed=0) -> TensorGroup:
    base = torch.as_tensor(base, dtype=torch.float32)
    experts = [torch.as_tensor(e, dtype=torch.float32) for e in experts]
    return TensorGroup(name, base, experts, [f"t{i}" for i in range(len(experts))], seed=seed)


# ------------------------------------------------------------------ 1. DELLA window
def test_della_epsilon_is_the_authors_full_window_width():
    # The authors pass epsilon = window_size / 2 to rank_magnitude, whose keep
    # probabilities span [k − window/2, k + window/2]. With drop p = 0.5 and window
    # 0.2 = ε, a row |τ| = (1, 2, 3) keeps ranks 0, 1, 2 with probability 0.4, 0.5, 0.6,
    # and every survivor is divided by its own keep probability: 1/0.4 = 2.5, 2/0.5 = 4,
    # 3/0.6 = 5. (Read as a half-width, ε = 0.2 would give 0.3, 0.5, 0.7 and 3.33, 4, 4.29.)
    row = torch.tensor([[1.0, 2.0, 3.0]])
    survivors: set[tuple[int, float]] = set()
    for seed in range(40):
        pruned = magprune(row, 0.5, 0.2, torch.Generator().manual_seed(seed))[0]
        survivors |= {(i, round(v, 5)) for i, v in enumerate(pruned.tolist()) if v != 0}
    assert survivors == {(0, 2.5), (1, 4.0), (2, 5.0)}


# --------------------------------------------------------------- 2. TIES λ with mean
def test_ties_and_dare_ties_default_to_the_papers_lambda_with_the_disjoint_mean():
    assert METHODS.get("ties").defaults == {"scaling": 1.0, "density": 0.2}
    assert METHODS.get("dare_ties").defaults["scaling"] == 1.0
    # the paper's validation range (0.8–2.5) and the small values small towers pick
    assert {0.2, 1.0, 1.5, 2.0} <= set(METHODS.get("ties").params["scaling"].grid)
    # elected sign +0.3 > 0: the disjoint mean of (+0.5, +0.4) is +0.45, not the sum 0.9
    # (FusionBench's merge_func: sum, which it pairs with λ = 0.3)
    trimmed = torch.tensor([[0.5], [0.4], [-0.6]])
    assert elect_and_disjoint_mean(trimmed).item() == pytest.approx(0.45)


# -------------------------------------------------------------- 3. SLERP threshold
def _unit_pair(cosine: float) -> tuple[torch.Tensor, torch.Tensor]:
    sine = math.sqrt(1.0 - cosine**2)
    return torch.tensor([1.0, 0.0]), torch.tensor([cosine, sine])


def test_slerp_is_linear_above_the_references_dot_threshold():
    assert DOT_THRESHOLD == 0.9995  # mergekit's and FusionBench's DOT_THRESHOLD
    # cos Ω = 0.9996 > 0.9995: (a + b)/2, whose norm is cos(Ω/2) < 1; the old rule
    # (|sin Ω| = 0.028 ≥ 1e-6) took the spherical branch and returned a unit vector.
    a, b = _unit_pair(0.9996)
    merged = slerp_tensors(a, b, 0.5)
    assert torch.allclose(merged, (a + b) / 2, atol=1e-7)
    assert merged.norm().item() == pytest.approx(math.sqrt((1 + 0.9996) / 2), abs=1e-6)
    # anti-parallel side: |cos Ω| counts, as in both references
    assert torch.allclose(slerp_tensors(a, -b, 0.25), 0.75 * a - 0.25 * b, atol=1e-7)


def test_slerp_is_spherical_below_the_threshold():
    # cos Ω = 0.999 < 0.9995: at t = 1/2 both weights are sin(Ω/2)/sin Ω = 1/(2 cos(Ω/2)),
    # so the midpoint of two unit vectors is (a + b)/(2 cos(Ω/2)), a unit vector.
    a, b = _unit_pair(0.999)
    half_angle_cos = math.sqrt((1 + 0.999) / 2)
    merged = slerp_tensors(a, b, 0.5)
    assert torch.allclose(merged, (a + b) / (2 * half_angle_cos), atol=1e-6)
    assert merged.norm().item() == pytest.approx(1.0, abs=1e-6)
    # the threshold is the only switch: raising it makes the same pair spherical again
    above = _unit_pair(0.9996)
    assert slerp_tensors(*above, 0.5, dot_threshold=1.0).norm().item() == pytest.approx(1.0)


# ------------------------------------------------------------ 4. Breadcrumbs counts
def test_breadcrumbs_band_truncates_counts_like_mergekit_on_256_entries():
    # n = 256, β = 0.85, γ = 0.01: ⌊2.56⌋ = 2 outliers, ⌊0.14·256⌋ = ⌊35.84⌋ = 35 kept,
    # bottom = 256 − 35 − 2 = 219: ranks 219..253 survive, as mergekit's
    # indices[219:-2] with density 0.14 (rounding gave ranks 218..252).
    vector = torch.arange(1, 257, dtype=torch.float32)  # |value| rank = value − 1
    vector[::2] *= -1  # signs do not matter
    mask = magnitude_band_mask(vector, bottom=0.85, top=0.01)
    kept_ranks = (vector.abs()[mask] - 1).long().tolist()
    assert kept_ranks == list(range(219, 254))


def test_breadcrumbs_with_less_than_one_outlier_keeps_the_band_up_to_the_largest():
    # the grid's γ = 0.001 on a 256-entry tensor: γ·n = 0.256 → no outlier removed;
    # kept = ⌊(1 − 0.85 − 0.001)·256⌋ = ⌊38.144⌋ = 38: ranks 218..255, the largest
    # included (the authors' code; mergekit would return all zeros here).
    vector = torch.arange(1, 257, dtype=torch.float32)
    mask = magnitude_band_mask(vector, bottom=0.85, top=0.001)
    assert (vector[mask] - 1).long().tolist() == list(range(218, 256))
    # the method on a tiny tensor (n = 10, γ·n = 0.01): with β = 0.5, kept = ⌊4.99⌋ = 4,
    # the four largest entries survive, scaled by α = 1
    tau = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.9, -1.0])
    merged = breadcrumbs.tensor_merge(
        group(torch.zeros(10), tau), scaling=1.0, bottom=0.5, top=0.001
    )
    assert merged.tolist() == pytest.approx([0.0] * 6 + [0.7, -0.8, 0.9, -1.0])


def test_breadcrumbs_counts_are_not_lost_to_floating_point():
    # β = 0.8 (a grid value), γ = 0.01: (1 − 0.8 − 0.01)·100 = 18.999999999999993 in
    # floating point; 19 entries are kept, not 18
    mask = magnitude_band_mask(torch.arange(1, 101, dtype=torch.float32), 0.8, 0.01)
    assert int(mask.sum()) == 19
