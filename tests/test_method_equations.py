"""Equation tests: each data-free method's per-tensor rule on small hand-computable
tensors, checked against the paper's equations (values worked out by hand in comments)."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import HyperparameterError
from harness.merging import chunks
from harness.merging.sparsify import dare, magnitude_band_mask, magprune, top_fraction_mask
from harness.merging.subspace import low_rank, orthogonalize, svd
from harness.weights.pool import TensorGroup
from methods.merging.breadcrumbs import breadcrumbs
from methods.merging.consensus import consensus
from methods.merging.dare_ta import dare_ta
from methods.merging.emr import emr_masks, rescaler_sums, rescalers, unified_task_vector
from methods.merging.iso_c import iso_c, isotropic
from methods.merging.iso_cts import iso_cts_matrix
from methods.merging.magmax import magmax
from methods.merging.model_stock import interpolation_ratio, model_stock
from methods.merging.pcb import (
    LayerStatistics,
    balancing_scores,
    log_balancing_scores,
    pcb_merge,
)
from methods.merging.slerp import slerp_tensors
from methods.merging.tall_masks import tall_masks
from methods.merging.task_arithmetic import task_arithmetic
from methods.merging.ties import elect_and_disjoint_mean
from methods.merging.tsv import tsv_merge_matrix
from methods.merging.weight_average import weight_average


def group(base, *experts, name="w", seed=0) -> TensorGroup:
    base = torch.as_tensor(base, dtype=torch.float32)
    experts = [torch.as_tensor(e, dtype=torch.float32) for e in experts]
    return TensorGroup(name, base, experts, [f"t{i}" for i in range(len(experts))], seed=seed)


def merge(method, g, **hp):
    return method.tensor_merge(g, **hp)


# ------------------------------------------------------------- lead's baselines
def test_weight_average_is_the_mean_of_experts():
    g = group([0.0, 0.0], [1.0, 2.0], [3.0, -2.0])
    assert torch.equal(merge(weight_average, g), torch.tensor([2.0, 0.0]))


def test_task_arithmetic_adds_the_scaled_sum():
    # θ0 = 1, τ = (1, 2), (3, −2): θ = 1 + 0.5 · (4, 0) = (3, 1)
    g = group([1.0, 1.0], [2.0, 3.0], [4.0, -1.0])
    assert torch.equal(merge(task_arithmetic, g, scaling=0.5), torch.tensor([3.0, 1.0]))


def test_ties_sign_election_and_disjoint_mean_on_a_2x3_example():
    # three trimmed task vectors of a 2×3 tensor (tasks first)
    trimmed = torch.tensor(
        [
            [[1.0, -2.0, 0.0], [3.0, 0.0, -1.0]],
            [[2.0, 1.0, 0.0], [-1.0, 0.0, -3.0]],
            [[-4.0, 0.0, 0.0], [1.0, 5.0, 2.0]],
        ]
    )
    # column sums: (−1, −1, 0) / (3, 5, −2) → elected signs (−, −, 0) / (+, +, −)
    # (0,0): only −4 agrees → −4;  (0,1): only −2 → −2;  (0,2): sign 0 → 0
    # (1,0): 3 and 1 agree → 2;    (1,1): 5 → 5;         (1,2): −1, −3 agree → −2
    expected = torch.tensor([[-4.0, -2.0, 0.0], [2.0, 5.0, -2.0]])
    assert torch.equal(elect_and_disjoint_mean(trimmed), expected)


# ---------------------------------------------------------------------- DARE
@pytest.mark.parametrize("chunk_elements", [1 << 24, 24])  # whole tensors; row slices
def test_global_top_k_threshold_is_the_exact_kth_magnitude(tmp_path, chunk_elements):
    """TIES's trim threshold over the whole model equals the k-th largest non-zero |τ_t|
    of all tensors concatenated, whatever the magnitudes' range (1e-30 … 1e3), with
    zeros, repeated values and bf16 storage."""
    from safetensors.torch import save_file

    from harness.merging.task_vectors import magnitude_thresholds
    from harness.weights.pool import Checkpoint, ExpertPool

    generator = torch.Generator().manual_seed(0)
    base = {"a": torch.zeros(12, 8), "b": torch.zeros(30), "c": torch.zeros(5, 4, 3)}
    save_file(base, str(tmp_path / "base.safetensors"))
    experts, flat = {}, {}
    for task in ["t0", "t1"]:
        state = {}
        for name, tensor in base.items():
            exponents = torch.randint(-30, 4, tensor.shape, generator=generator)
            values = torch.randn(tensor.shape, generator=generator) * 10.0**exponents
            values[torch.rand(tensor.shape, generator=generator) < 0.2] = 0.0
            values.view(-1)[:6] = 0.5  # repeated values across the k-th rank
            state[name] = values.to(torch.bfloat16)
        save_file(state, str(tmp_path / f"{task}.safetensors"))
        experts[task] = Checkpoint(tmp_path / f"{task}.safetensors", task)
        flat[task] = torch.cat([v.float().abs().flatten() for v in state.values()])
    pool = ExpertPool(
        Checkpoint(tmp_path / "base.safetensors", "base"), experts, chunk_elements=chunk_elements
    )
    total = pool.num_parameters()
    for density in [0.01, 0.2, 0.5, 0.79]:
        thresholds = magnitude_thresholds(pool, density, progress=False)
        keep = math.ceil(density * total)
        for task, magnitudes in flat.items():
            non_zero = magnitudes[magnitudes > 0].sort(descending=True).values
            expected = float(non_zero[keep - 1]) if keep <= non_zero.numel() else 0.0
            assert thresholds[task] == expected, (density, task)
    # more entries asked for than are non-zero: zeros are kept too
    assert magnitude_thresholds(pool, 0.95, progress=False) == {"t0": 0.0, "t1": 0.0}


def test_dare_rescales_kept_entries_and_keeps_the_expectation():
    vector = torch.full((200_000,), 2.0)
    generator = torch.Generator().manual_seed(0)
    dropped = dare(vector, 0.9, generator)
    kept = dropped[dropped != 0]
    assert torch.allclose(kept, torch.tensor(20.0))  # 2 / (1 − 0.9)
    assert abs(kept.numel() / vector.numel() - 0.1) < 0.005  # ≈ 1 − p kept
    assert abs(dropped.mean().item() - 2.0) < 0.05  # E[DARE(τ)] = τ


def test_dare_with_no_drop_is_task_arithmetic_and_is_seeded():
    g = group([0.0, 1.0], [1.0, 3.0], [2.0, 0.0])
    assert torch.equal(merge(dare_ta, g, scaling=1.0, drop=0.0), torch.tensor([3.0, 2.0]))
    big = group(torch.zeros(1000), torch.randn(1000), torch.randn(1000), seed=7)
    first = merge(dare_ta, big, scaling=1.0, drop=0.5)
    assert torch.equal(first, merge(dare_ta, big, scaling=1.0, drop=0.5))
    other = group(big.base, *big.experts, seed=8)
    assert not torch.equal(first, merge(dare_ta, other, scaling=1.0, drop=0.5))
    with pytest.raises(HyperparameterError):
        dare(torch.ones(3), 1.0, None)


# ------------------------------------------------------------------ Breadcrumbs
def test_breadcrumbs_masks_both_tails():
    vector = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.9, -10.0])
    # bottom 30% (3 smallest |·|) and top 10% (the outlier −10) are masked
    mask = magnitude_band_mask(vector, bottom=0.3, top=0.1)
    assert mask.tolist() == [False] * 3 + [True] * 6 + [False]
    g = group(torch.zeros(10), vector)
    expected = torch.where(mask, vector, 0.0) * 0.5
    assert torch.equal(merge(breadcrumbs, g, scaling=0.5, bottom=0.3, top=0.1), expected)


# ------------------------------------------------------------------------ DELLA
def test_della_magprune_drops_small_magnitudes_more_and_keeps_the_expectation():
    vector = torch.cat([torch.full((50_000,), 0.1), torch.full((50_000,), 1.0)])
    vector = vector[torch.randperm(vector.numel(), generator=torch.Generator().manual_seed(1))]
    pruned = magprune(vector, 0.5, 0.4, torch.Generator().manual_seed(0))
    small, large = vector == 0.1, vector == 1.0
    kept_small = (pruned[small] != 0).float().mean().item()
    kept_large = (pruned[large] != 0).float().mean().item()
    # drop probabilities spread over [0.3, 0.7]: small entries ≈ 0.6 dropped, large ≈ 0.4
    assert kept_small == pytest.approx(0.4, abs=0.01)
    assert kept_large == pytest.approx(0.6, abs=0.01)
    assert pruned[small].mean().item() == pytest.approx(0.1, rel=0.05)
    assert pruned[large].mean().item() == pytest.approx(1.0, rel=0.05)
    with pytest.raises(HyperparameterError):
        magprune(vector, 0.9, 0.4, None)  # 0.9 + 0.2 ≥ 1


def test_della_ranks_within_rows_of_a_matrix():
    # row 0 holds only small magnitudes, row 1 only large ones: ranked per row, both rows
    # keep about 1 − p of their entries (ranked over the tensor, row 1 would keep more)
    generator = torch.Generator().manual_seed(3)
    matrix = torch.stack(
        [
            0.01 * torch.rand(50_000, generator=generator) + 0.01,
            torch.rand(50_000, generator=generator) + 1.0,
        ]
    )
    pruned = magprune(matrix, 0.5, 0.4, torch.Generator().manual_seed(0))
    kept = (pruned != 0).float().mean(dim=1)
    assert torch.allclose(kept, torch.tensor([0.5, 0.5]), atol=0.01)


# ----------------------------------------------------------------------- MagMax
def test_magmax_picks_the_largest_magnitude_with_its_sign():
    g = group([0.0, 0.0, 0.0], [1.0, -5.0, 2.0], [-3.0, 4.0, 2.5])
    assert torch.equal(merge(magmax, g, scaling=1.0), torch.tensor([-3.0, -5.0, 2.5]))
    assert torch.equal(merge(magmax, g, scaling=0.5), torch.tensor([-1.5, -2.5, 1.25]))


# ------------------------------------------------------------------------ SLERP
def test_slerp_endpoints_and_the_angle_formula():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    assert torch.allclose(slerp_tensors(a, b, 0.0), a)
    assert torch.allclose(slerp_tensors(a, b, 1.0), b)
    # Ω = 90°: at t = 1/2 both weights are sin(45°)/sin(90°) = √2/2
    half = math.sqrt(0.5)
    assert torch.allclose(slerp_tensors(a, b, 0.5), torch.tensor([half, 2 * half]))
    # parallel tensors fall back to linear interpolation
    assert torch.allclose(slerp_tensors(a, 3 * a, 0.5), 2 * a)


# ------------------------------------------------------------------ Model Stock
def test_model_stock_ratio_from_the_angle():
    # τ_1 = (1, 0), τ_2 = (1, 1)/√2·√2: cos θ = 1/√2; t = 2c / (1 + c)
    t1, t2 = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    c = 1 / math.sqrt(2)
    assert interpolation_ratio([t1, t2]) == pytest.approx(2 * c / (1 + c))
    assert interpolation_ratio([t1, t1]) == pytest.approx(1.0)
    assert interpolation_ratio([t1, -t1]) == 0.0  # negative cosine clamped: the anchor
    g = group([1.0, 1.0], [2.0, 1.0], [2.0, 2.0])
    t = 2 * c / (1 + c)
    expected = t * torch.tensor([2.0, 1.5]) + (1 - t) * torch.tensor([1.0, 1.0])
    assert torch.allclose(merge(model_stock, g), expected)


# ------------------------------------------------------ TALL masks and Consensus
def test_tall_masks_and_consensus():
    vectors = torch.tensor([[1.0, 0.1, 2.0], [0.9, 0.0, -2.0], [0.0, 3.0, 0.1]])
    # τ_MTL = (1.9, 3.1, 0.1); |τ_MTL − τ_t| = (0.9, 3.0, 1.9), (1.0, 3.1, 2.1), (1.9, 0.1, 0)
    masks = tall_masks(vectors, 1.0)
    assert masks.tolist() == [[True, False, True], [False, False, False], [False, True, True]]
    masks = tall_masks(vectors, 0.5)  # |τ_t| > 0.5 · rest
    assert masks.tolist() == [[True, False, True], [True, False, True], [False, True, True]]
    # strict, as the authors' code: ties (|τ_t| = λ |rest|, all-zero entries) are not kept
    ties = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # |1| = 1 · |2 − 1|;  0 = 0
    assert tall_masks(ties, 1.0).tolist() == [[False, False], [False, False]]
    g = group([0.0, 0.0, 0.0], *vectors)
    # λ = 0.5: weights used by ≥ 2 tasks are entries 0 and 2
    out = merge(consensus, g, scaling=1.0, k=2, tall_lambda=0.5)
    assert torch.allclose(out, torch.tensor([1.9, 0.0, 0.1]))


# -------------------------------------------------------------------------- EMR
def test_emr_elect_mask_rescale():
    vectors = torch.tensor([[2.0, -1.0, 0.5, 0.0], [1.0, 3.0, -0.5, -1.0]])
    # signs of the sum (3, 2, 0, −1) → (+, +, 0, −); largest agreeing magnitude:
    unified = unified_task_vector(vectors)
    assert torch.equal(unified, torch.tensor([2.0, 3.0, 0.0, -1.0]))
    masks = emr_masks(vectors, unified)
    assert masks.tolist() == [[True, False, False, False], [True, True, False, True]]
    # λ_1 = Σ|τ_1| / Σ|M_1 τ_uni| = 3.5 / 2;  λ_2 = 5.5 / 6
    scales = rescalers(rescaler_sums(vectors))
    assert torch.allclose(scales, torch.tensor([3.5 / 2, 5.5 / 6], dtype=torch.float64))


# -------------------------------------------------------------------------- PCB
def test_pcb_scores_and_balanced_mean():
    vectors = torch.tensor([[1.0, 2.0, 0.0, -1.0], [1.0, -2.0, 3.0, 0.0]])
    scores = balancing_scores(vectors)
    assert scores.shape == vectors.shape and (scores > 0).all()

    def norm(x):  # standardised over the entries, population std
        return (x - x.mean()) / x.std(unbiased=False)

    wide = vectors.double()
    for i in range(2):  # β_i = Softmax(N·Norm(τ_i²)) ⊙ Σ_j Softmax(Norm(τ_i ⊙ τ_j))
        intra = torch.softmax(2 * norm(wide[i] * wide[i]), dim=0)
        inter = sum(torch.softmax(norm(wide[i] * wide[j]), dim=0) for j in range(2))
        assert torch.allclose(scores[i].double(), intra * inter, rtol=1e-6)
    # with nothing dropped the result is the score-weighted mean of the task vectors
    expected = (scores * vectors).sum(0) / scores.sum(0)
    assert torch.allclose(pcb_merge(vectors, 1.0), expected)
    # one task: the weighted mean is the task vector itself
    assert torch.allclose(pcb_merge(vectors[:1], 1.0), vectors[0])
    # the kept fraction keeps the highest scores of each task
    assert top_fraction_mask(torch.tensor([0.1, 0.4, 0.3, 0.2]), 0.5).tolist() == [
        False,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("chunk", [None, 3_001])  # one chunk; many, the last ragged
def test_pcb_scores_that_underflow_float32_still_rank_and_weight(monkeypatch, chunk):
    """One outlier puts every other β of its task near e⁻²⁸⁴, below float32's range: the
    kept top 10% and the weighted mean must still be the float64 equations' (as plain
    float32 β they were all 0, and the kept entries fell by position)."""
    if chunk is not None:
        monkeypatch.setattr(chunks, "CHUNK", chunk)
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(2, 20_000, generator=generator)
    vectors[0, 0] = 100.0
    wide = vectors.double()

    def norm(x):
        return (x - x.mean()) / x.std(unbiased=False)

    log_scores = torch.stack(
        [
            torch.log_softmax(2 * norm(wide[i] * wide[i]), dim=0)
            + torch.logsumexp(
                torch.stack([torch.log_softmax(norm(wide[i] * wide[j]), 0) for j in range(2)]), 0
            )
            for i in range(2)
        ]
    )
    assert (log_scores[0, 1:] < -200).all()  # exp of these is 0 in float32
    keep = 2_000
    masks = torch.zeros_like(vectors, dtype=torch.bool)
    for i in range(2):
        masks[i, log_scores[i].topk(keep).indices] = True
    weights = torch.where(masks, (log_scores - log_scores.max(0).values).exp(), 0.0)
    total = weights.sum(0)
    expected = torch.where(total > 0, (weights * wide).sum(0) / total.clamp(min=1e-300), 0.0)
    torch.testing.assert_close(pcb_merge(vectors, 0.1).double(), expected, rtol=1e-5, atol=1e-6)


def _heavy_tailed(tasks: int, count: int, seed: int = 0) -> torch.Tensor:
    """Task vectors with an outlier per task: most of the intra Softmax's arguments lie
    hundreds below its maximum, where exp is a float64 denormal or 0."""
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(tasks, count, generator=generator)
    vectors[torch.arange(tasks), torch.arange(tasks)] = 100.0  # N·Norm of it: about N·√count
    return vectors


def test_pcb_softmax_normalisers_are_the_float64_sums():
    """Σ exp(argument − max) over the whole tensor, gathered in chunks with arguments
    below −700 raised to it (faster exp): the float64 sum of the exact exponentials
    (a cut at −40 instead would add 10⁵ · e⁻⁴⁰ ≈ 4·10⁻¹³ to the intra sums)."""
    vectors = _heavy_tailed(3, 100_000)
    statistics = LayerStatistics.empty(100_000, 3)
    statistics.add_moments(vectors)
    statistics.add_exponentials(vectors)
    assert statistics.exponentials is not None
    wide = vectors.double()
    for i in range(3):
        for j in range(i, 3):
            for kind in (0, 1) if i == j else (1,):
                scale, shift = statistics.affine(i, j, kind)
                argument = scale * wide[i] * wide[j] + shift
                if kind == 0:
                    assert (argument - argument.max() < -708).float().mean() > 0.9
                expected = math.fsum(torch.exp(argument - argument.max()).tolist())
                assert statistics.maximum(i, j, kind) == pytest.approx(
                    float(argument.max()), rel=1e-14, abs=0
                )
                assert float(statistics.exponentials[i, j, kind]) == pytest.approx(
                    expected, rel=1e-14, abs=0
                )


def test_pcb_merge_is_the_same_in_any_chunking(monkeypatch):
    """The chunked passes (statistics, scores, weighted mean) give the whole tensor's
    bits: per entry the same operations, per column the sums over tasks in one order."""
    vectors = _heavy_tailed(4, 30_000, seed=1)
    whole = pcb_merge(vectors, 0.1)
    scores = log_balancing_scores(vectors)
    monkeypatch.setattr(chunks, "CHUNK", 2_999)
    assert torch.equal(log_balancing_scores(vectors), scores)
    assert torch.equal(pcb_merge(vectors, 0.1), whole)


# ------------------------------------------------------------------ TSV and ISO
def _rank_one(u, v, s):
    u, v = torch.tensor(u), torch.tensor(v)
    return s * torch.outer(u / u.norm(), v / v.norm())


def test_tsv_on_rank_one_task_vectors():
    # two rank-1 updates along orthogonal directions: TSV keeps both, the sum is exact
    a = _rank_one([1.0, 0.0, 0.0], [1.0, 0.0], 3.0)
    b = _rank_one([0.0, 1.0, 0.0], [0.0, 1.0], 1.0)
    assert torch.allclose(tsv_merge_matrix([a, b]), a + b, atol=1e-6)
    # non-orthogonal left vectors are whitened: U⊥ = the polar factor of [u_a, u_b]
    c = _rank_one([1.0, 1.0, 0.0], [0.0, 1.0], 1.0)
    u = torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)], [0.0, 0.0]])
    u_perp = orthogonalize(u)
    assert torch.allclose(u_perp.T @ u_perp, torch.eye(2), atol=1e-6)
    expected = u_perp @ torch.diag(torch.tensor([3.0, 1.0])) @ torch.eye(2)
    assert torch.allclose(tsv_merge_matrix([a, c]), expected, atol=1e-5)


def test_iso_c_flattens_the_spectrum_to_its_mean():
    # Δ = diag(3, 1) (two rank-1 task vectors): σ̄ = 2, Δ_iso = 2 · I
    a = _rank_one([1.0, 0.0], [1.0, 0.0], 3.0)
    b = _rank_one([0.0, 1.0], [0.0, 1.0], 1.0)
    assert torch.allclose(isotropic(a + b), 2.0 * torch.eye(2), atol=1e-6)
    g = group(torch.zeros(2, 2), a, b)
    assert torch.allclose(merge(iso_c, g, scaling=0.5), torch.eye(2), atol=1e-6)
    g = group(torch.zeros(3), [1.0, 2.0, 3.0], [3.0, 2.0, 1.0])  # not a matrix: the mean
    assert torch.allclose(merge(iso_c, g, scaling=1.0), torch.tensor([2.0, 2.0, 2.0]))


def test_iso_cts_common_and_task_specific_subspaces():
    # r = 4, c = 0.5: k = 2 common directions of Δ, (4 − 2)/2 = 1 extra per task
    a = torch.diag(torch.tensor([4.0, 0.0, 1.0, 0.0]))
    b = torch.diag(torch.tensor([3.0, 2.0, 0.0, 0.5]))
    out = iso_cts_matrix([a, b], 0.5)
    # Δ = diag(7, 2, 1, 0.5): common = e1, e2 (σ 7, 2); task-specific: e3 (σ 1) from a,
    # e4 (σ 0.5) from b; all four orthogonal, σ̄ = (7 + 2 + 1 + 0.5) / 4 = 2.625
    assert torch.allclose(out, 2.625 * torch.eye(4), atol=1e-5)
    # c = 1: no task-specific room, ISO-C
    assert torch.allclose(iso_cts_matrix([a, b], 1.0), isotropic(a + b), atol=1e-5)
    # r = 5, c = 0.5: s = round((5 − 2) / 2) = 2 per task, so k = 5 − 2·2 = 1 (the authors'
    # rounding: the kept directions fill the rank). Δ = diag(7, 2, 1, 0.6, 0.5): common
    # e1 (σ 7); a adds e3, e4 (σ 1, 0.6), b adds e2, e5 (σ 2, 0.5); σ̄ = 11.1 / 5 = 2.22
    a = torch.diag(torch.tensor([4.0, 0.0, 1.0, 0.6, 0.0]))
    b = torch.diag(torch.tensor([3.0, 2.0, 0.0, 0.0, 0.5]))
    assert torch.allclose(iso_cts_matrix([a, b], 0.5), 2.22 * torch.eye(5), atol=1e-5)


def test_low_rank_is_the_truncated_svd():
    matrix = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    assert torch.allclose(low_rank(matrix, 2), torch.diag(torch.tensor([3.0, 2.0, 0.0])))
    assert torch.allclose(low_rank(matrix, 10), matrix)


def test_wide_svd_is_decomposed_as_its_transpose(monkeypatch):
    """On the CPU a wide matrix goes to LAPACK transposed (2.7x faster at Llama's down
    projection); the thin factors are still those of the matrix, S descending."""
    real_svd = torch.linalg.svd
    shapes = []

    def recorded(matrix, full_matrices=True):
        shapes.append(tuple(matrix.shape))
        return real_svd(matrix, full_matrices=full_matrices)

    monkeypatch.setattr(torch.linalg, "svd", recorded)
    wide = torch.randn(3, 7, generator=torch.Generator().manual_seed(0))
    u, s, vh = svd(wide)
    assert shapes == [(7, 3)]
    assert u.shape == (3, 3) and s.shape == (3,) and vh.shape == (3, 7)
    assert torch.allclose((u * s) @ vh, wide, atol=1e-5)
    assert torch.allclose(u.T @ u, torch.eye(3), atol=1e-5)
    assert torch.allclose(vh @ vh.T, torch.eye(3), atol=1e-5)
    assert torch.allclose(s, real_svd(wide, full_matrices=False).S) and bool(
        (s[:-1] >= s[1:]).all()
    )


def test_svd_falls_back_to_float64_where_float32_does_not_converge(monkeypatch):
    """MKL's float32 SVD fails on some nearly singular inputs (ISO-CTS at 8B shapes): the
    spectral methods then get the float64 decomposition, in float32, not an error."""
    real_svd = torch.linalg.svd
    dtypes = []

    def float32_fails(matrix, full_matrices=True):
        dtypes.append(matrix.dtype)
        if matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")
        return real_svd(matrix, full_matrices=full_matrices)

    monkeypatch.setattr(torch.linalg, "svd", float32_fails)
    matrix = torch.tensor([[2.0, 0.0], [0.0, 1e-4], [1.0, 0.0]])
    polar = orthogonalize(matrix)
    assert dtypes == [torch.float32, torch.float64] and polar.dtype == torch.float32
    assert torch.allclose(polar.T @ polar, torch.eye(2), atol=1e-6)
    assert torch.allclose(
        polar,
        torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]) / torch.tensor([5**0.5, 1.0]),
        atol=1e-6,
    )
