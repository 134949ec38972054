"""Fixes from the independent parity check against FusionBench, mergekit and the authors'
code: each test pins the corrected rule on a hand-computable example (the working is in
the comments), so a regression to the old rule fails."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import HyperparameterError
from harness.merging.sparsify import magnitude_band_mask, magprune
from harness.merging.statistics import (
    RegressionSums,
    diagonal_fisher,
    input_grams,
    linear_layers,
    regression_merge,
    task_gram,
)
from harness.registry import METHODS
from harness.weights.pool import TensorGroup
from methods.merging.breadcrumbs import breadcrumbs
from methods.merging.fisher import fisher_average, fisher_weights_
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


# --------------------------------------------------------- 5. RegMean mean vs sum Gram
def _one_weight_layer(weight: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(weight)
    return layer


def _regmean_one_weight(reduction: str) -> float:
    # Task a: W_a = 1 on one token x = 1 (XᵀX = 1, 1 row). Task b: W_b = 3 on one example
    # of three tokens x = 1 (XᵀX = 3, 3 rows).
    #   mean: G_a = G_b = 1  → W = (1·1 + 1·3)/(1 + 1) = 2   (each task weighs the same)
    #   sum:  G_a = 1, G_b = 3 → W = (1·1 + 3·3)/(1 + 3) = 2.5 (the task with more tokens)
    sums = RegressionSums(alpha=1.0)
    for weight, inputs in [(1.0, [torch.ones(1, 1)]), (3.0, [torch.ones(1, 3, 1)])]:
        layer = _one_weight_layer(weight)
        grams, rows = input_grams(layer, inputs, torch.device("cpu"))
        sums.add("weight", task_gram(grams["weight"], rows["weight"], reduction), layer.weight)
    return sums.solve("weight").item()


def test_regmean_gram_mean_weighs_tasks_equally_whatever_their_token_counts():
    assert _regmean_one_weight("mean") == pytest.approx(2.0)
    assert _regmean_one_weight("sum") == pytest.approx(2.5)
    assert METHODS.get("regmean").defaults["gram"] == "mean"
    assert METHODS.get("regmean_pp").defaults["gram"] == "mean"
    with pytest.raises(HyperparameterError, match="gram must be one of"):
        task_gram(torch.ones(1, 1), 1, "median")


def _fewer_examples_for_the_first_task(context, monkeypatch, limit: int) -> None:
    original = context.labeled_batches
    first = context.tasks[0]

    def labeled_batches(task, split, **kwargs):
        if task == first:
            kwargs["limit"] = limit
        return original(task, split, **kwargs)

    monkeypatch.setattr(context, "labeled_batches", labeled_batches)


def _run(name: str, context, **overrides):
    entry = METHODS.get(name)
    torch.manual_seed(0)
    return entry.obj(context, **entry.resolve_params(overrides))


def test_regmean_method_uses_per_task_mean_grams_with_unequal_counts(tiny_context, monkeypatch):
    _fewer_examples_for_the_first_task(tiny_context, monkeypatch, limit=4)  # others: 16
    pool = tiny_context.pool
    mean = _run("regmean", tiny_context, alpha=1.0, num_examples=16, gram="mean")
    total = _run("regmean", tiny_context, alpha=1.0, num_examples=16, gram="sum")
    assert mean.info["gram"] == "mean" and total.info["gram"] == "sum"
    name = next(iter(linear_layers(tiny_context.build_model(pool.base_state()))))
    means, sums, weights = [], [], []
    for task in pool.tasks:
        model = tiny_context.build_model(pool.expert_state(task))
        batches = tiny_context.labeled_batches(task, "train", limit=16)
        grams, rows = input_grams(model, (x for x, _ in batches), tiny_context.device)
        means.append(grams[name] / rows[name])
        sums.append(grams[name])
        weights.append(pool.expert_tensor(task, name))
    assert torch.allclose(mean.state[name], regression_merge(means, weights), atol=1e-4)
    assert torch.allclose(total.state[name], regression_merge(sums, weights), atol=1e-4)
    assert not torch.allclose(mean.state[name], total.state[name], atol=1e-4)


# ---------------------------------------------------------- 6. Fisher: FusionBench variant
def test_fisher_paper_floor_is_a_clamp_and_fusionbench_adds_and_normalises():
    paper = fisher_weights_({"w": torch.tensor([0.0, 2.0, 5.0])}, 1.0, "paper")
    assert paper["w"].tolist() == [1.0, 2.0, 5.0]  # max(F, 1)
    # FusionBench: ‖F‖₂ = ‖(3, 0, 4)‖ = 5 over all parameters, then (F + ε)/(‖F‖ + ε)
    # with ε = 1: (4, 1)/6 and 5/6
    fusion = fisher_weights_(
        {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([4.0])}, 1.0, "fusionbench"
    )
    assert fusion["a"].tolist() == pytest.approx([4 / 6, 1 / 6])
    assert fusion["b"].tolist() == pytest.approx([5 / 6])


def test_fisher_fusionbench_normalisation_removes_a_models_overall_scale():
    # θ_1 = 0 with F_1 = (1, 1); θ_2 = 11 with F_2 = (10, 10), ε = 0.
    #   paper:       (1·0 + 10·11)/(1 + 10) = 10
    #   fusionbench: c_t F_t = F_t/‖F_t‖ = (1, 1)/√2 for both → the plain average 5.5
    thetas = [torch.zeros(2), torch.full((2,), 11.0)]
    for variant, expected in [("paper", 10.0), ("fusionbench", 5.5)]:
        weights = [
            fisher_weights_({"w": torch.full((2,), f)}, 0.0, variant)["w"] for f in (1.0, 10.0)
        ]
        assert fisher_average(thetas, weights).tolist() == pytest.approx([expected] * 2)


def _logistic_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    # backbone s = w·x with w = ln 3; head logits (s, 0): at x = 1, p = (3/4, 1/4)
    backbone = _one_weight_layer(math.log(3.0))
    head = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0], [0.0]]))
    return backbone, head


def test_fusionbench_fisher_estimator_squares_the_batch_gradient():
    # ∂ log p_1/∂w = p_2 = 1/4 and ∂ log p_2/∂w = −p_1 = −3/4 at x = 1, so one example
    # gives g = √(3/4)·(1/4) + √(1/4)·(−3/4) = (√3 − 3)/8. A batch of two such examples
    # squares their sum: (2g)² = (√3 − 3)²/16; two batches of one give 2g², half as much
    # (the cross term). The true Fisher is Σ_y p_y (∂ log p_y)² = 3/64 + 9/64 = 3/16 per
    # example, far from either.
    backbone, head = _logistic_pair()
    g = (math.sqrt(3.0) - 3.0) / 8.0
    x, y = torch.ones(2, 1), torch.zeros(2, dtype=torch.long)
    cpu = torch.device("cpu")
    together, count = diagonal_fisher(backbone, head, [(x, y)], cpu, estimator="batch_expected")
    assert count == 2 and together["weight"].item() == pytest.approx((2 * g) ** 2)
    apart, _ = diagonal_fisher(
        backbone, head, [(x[:1], y[:1]), (x[1:], y[1:])], cpu, estimator="batch_expected"
    )
    assert apart["weight"].item() == pytest.approx(2 * g**2)
    # the paper's estimator with y = class 0: (∂ log p_1)² = 1/16 per example
    empirical, _ = diagonal_fisher(backbone, head, [(x, y)], cpu, labels="empirical")
    assert empirical["weight"].item() == pytest.approx(2 / 16)


def test_fisher_method_offers_the_fusionbench_variant(tiny_context):
    assert METHODS.get("fisher").defaults["variant"] == "paper"
    paper = _run("fisher", tiny_context, num_examples=8)
    fusion = _run("fisher", tiny_context, num_examples=8, variant="fusionbench")
    assert paper.info["fisher_variant"] == "paper"
    assert fusion.info == {"fisher_variant": "fusionbench", "fisher_labels": "expected"}
    name = next(n for n in fusion.state if n.endswith("fc1.weight"))
    assert torch.isfinite(fusion.state[name]).all()
    assert not torch.allclose(paper.state[name], fusion.state[name], atol=1e-6)
    # every merged coordinate is a convex combination of the experts' values
    experts = torch.stack([tiny_context.pool.expert_tensor(t, name) for t in tiny_context.tasks])
    assert (fusion.state[name] >= experts.min(0).values - 1e-6).all()
    assert (fusion.state[name] <= experts.max(0).values + 1e-6).all()
