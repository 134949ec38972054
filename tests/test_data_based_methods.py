"""Equation tests for the data-based and routing methods, on tiny tensors or the tiny suite.

Each test checks a property the paper's math implies (a closed form, an identity, an
invariant of the algorithm), not a snapshot of numbers.
"""

from __future__ import annotations

import pytest
import torch

from harness.merging.coefficients import TaskVectorMixer, entropy
from harness.merging.statistics import (
    RegressionSums,
    input_grams,
    linear_layers,
    regression_merge,
    scale_off_diagonal,
)
from harness.method import MethodContext
from harness.registry import METHODS
from harness.weights.pool import ExpertPool


def _run(name: str, context: MethodContext, **overrides):
    entry = METHODS.get(name)
    torch.manual_seed(0)
    return entry.obj(context, **entry.resolve_params(overrides))


def _same_expert_context(context: MethodContext) -> MethodContext:
    """Every task served by the first task's expert: θ_t = θ_a for all t."""
    pool = context.pool
    first = pool.experts[pool.tasks[0]]
    same = ExpertPool(pool.base, {task: first for task in pool.tasks})
    return MethodContext(context.suite, same, context.device, seed=0, progress=False)


def _close(a, b, atol=1e-5):
    return torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)


# ------------------------------------------------------------------------------ RegMean
def test_regmean_closed_form_is_the_multitask_least_squares_solution():
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(20, 5, generator=generator) for _ in range(3)]
    weights = [torch.randn(4, 5, generator=generator) for _ in range(3)]
    grams = [x.T @ x for x in inputs]
    merged = regression_merge(grams, weights)

    # Closed form by hand: Wᵀ = (Σ G_t)⁻¹ Σ G_t W_tᵀ.
    by_hand = torch.linalg.inv(sum(grams)) @ sum(g @ w.T for g, w in zip(grams, weights))
    assert _close(merged, by_hand.T)
    # The same W solves min_W Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖² (stacked least squares).
    stacked_x = torch.cat(inputs)
    stacked_y = torch.cat([x @ w.T for x, w in zip(inputs, weights)])
    least_squares = torch.linalg.lstsq(stacked_x, stacked_y).solution.T
    assert _close(merged, least_squares, atol=1e-4)
    # The running sums give the same answer with α = 1.
    sums = RegressionSums(alpha=1.0)
    for gram, weight in zip(grams, weights):
        sums.add("w", gram, weight)
    assert _close(sums.solve("w"), merged)


def test_regmean_alpha_scales_only_off_diagonal_entries():
    gram = torch.tensor([[4.0, 2.0], [2.0, 9.0]])
    scaled = scale_off_diagonal(gram, 0.25)
    assert torch.equal(scaled, torch.tensor([[4.0, 0.5], [0.5, 9.0]]))
    # α = 0 makes Gram matrices diagonal: per-input-feature weighted averaging.
    generator = torch.Generator().manual_seed(1)
    weights = [torch.randn(3, 2, generator=generator) for _ in range(2)]
    grams = [torch.diag(torch.tensor([1.0, 3.0])), torch.diag(torch.tensor([3.0, 1.0]))]
    merged = regression_merge(grams, weights)
    expected = torch.stack(
        [
            (weights[0][:, 0] * 1 + weights[1][:, 0] * 3) / 4,
            (weights[0][:, 1] * 3 + weights[1][:, 1]) / 4,
        ],
        dim=1,
    )
    assert _close(merged, expected)


def test_regmean_method_matches_the_closed_form_on_the_tiny_suite(tiny_context):
    solution = _run("regmean", tiny_context, alpha=0.9, num_examples=16)
    pool = tiny_context.pool
    name = next(iter(linear_layers(tiny_context.build_model(pool.base_state()))))
    grams, weights = [], []
    for task in pool.tasks:
        model = tiny_context.build_model(pool.expert_state(task))
        inputs = (x for x, _ in tiny_context.labeled_batches(task, "train", limit=16))
        gram, _ = input_grams(model, inputs, tiny_context.device)
        grams.append(scale_off_diagonal(gram[name], 0.9))
        weights.append(pool.expert_tensor(task, name))
    assert _close(solution.state[name], regression_merge(grams, weights), atol=1e-4)
    # Parameters that are not linear weights are the experts' average.
    layer_norm = next(n for n in pool.names if "layer_norm1.weight" in n)
    average = torch.stack([pool.expert_tensor(t, layer_norm) for t in pool.tasks]).mean(0)
    assert _close(solution.state[layer_norm], average)


def test_layer_groups_fit_the_budget_in_order():
    from torch import nn

    from harness.merging.statistics import layer_groups, regression_bytes

    layers = {f"l{i}.weight": nn.Linear(8 * (i + 1), 16) for i in range(4)}
    sizes = [regression_bytes(n, m) for n, m in layers.items()]
    assert sizes[0] == 4 * (2 * 8 * 8 + 8 * 16)
    assert layer_groups(layers) == [layers]  # no budget: one pass
    groups = layer_groups(layers, sizes[0] + sizes[1])
    assert [list(g) for g in groups] == [["l0.weight", "l1.weight"], ["l2.weight"], ["l3.weight"]]
    assert [list(g) for g in layer_groups(layers, 1)] == [[n] for n in layers]  # each alone


def test_regmean_under_a_gram_budget_is_the_same_merge_in_more_passes(tiny_context, monkeypatch):
    import methods.merging.regmean as regmean_module
    from harness.merging.statistics import layer_groups

    whole = _run("regmean", tiny_context, num_examples=16)
    assert whole.info["passes"] == 1
    # a budget of a few layers' sums (MiB is too coarse for the tiny model's layers)
    monkeypatch.setattr(
        regmean_module, "layer_groups", lambda layers, budget: layer_groups(layers, 20_000)
    )
    grouped = _run("regmean", tiny_context, num_examples=16, gram_budget_mib=1)
    assert grouped.info["passes"] > 2
    assert grouped.info["regression_layers"] == whole.info["regression_layers"]
    for key, value in whole.state.items():
        assert torch.equal(grouped.state[key], value), key


@pytest.mark.parametrize("name", ["regmean", "regmean_pp", "fisher"])
def test_identical_experts_merge_to_that_expert(tiny_context, name):
    context = _same_expert_context(tiny_context)
    solution = _run(name, context, num_examples=4)
    expert = context.pool.expert_state(context.tasks[0])
    for key, value in solution.state.items():
        assert _close(value, expert[key], atol=1e-4), key


def test_regmean_pp_last_block_is_the_closed_form_on_merged_inputs(tiny_context):
    state = _run("regmean_pp", tiny_context, alpha=1.0, num_examples=16).state
    pool = tiny_context.pool
    last = max(int(n.split("layers.")[1].split(".")[0]) for n in pool.names if "layers." in n)
    block = [n for n in pool.names if f"layers.{last}." in n]
    name = next(n for n in block if n.endswith("fc2.weight"))
    grams, weights = [], []
    for task in pool.tasks:
        # The merged model's earlier blocks, then expert t's own last block.
        hybrid = dict(state) | {n: pool.expert_tensor(task, n) for n in block}
        model = tiny_context.build_model(hybrid)
        inputs = (x for x, _ in tiny_context.labeled_batches(task, "train", limit=16))
        gram, _ = input_grams(model, inputs, tiny_context.device)
        grams.append(gram[name])
        weights.append(pool.expert_tensor(task, name))
    assert _close(state[name], regression_merge(grams, weights), atol=1e-4)
    plain = _run("regmean", tiny_context, alpha=1.0, num_examples=16).state
    assert not _close(plain[name], state[name], atol=1e-4)


# ------------------------------------------------------------------------------- Fisher
def test_fisher_average_weights_each_coordinate_by_its_fisher():
    from methods.merging.fisher import fisher_average

    tensors = [torch.tensor([1.0, 10.0]), torch.tensor([3.0, 20.0])]
    equal = [torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.0])]
    assert torch.equal(fisher_average(tensors, equal), torch.tensor([2.0, 15.0]))
    fishers = [torch.tensor([3.0, 1.0]), torch.tensor([1.0, 4.0])]
    # (3·1 + 1·3)/4 = 1.5 and (1·10 + 4·20)/5 = 18
    assert torch.equal(fisher_average(tensors, fishers), torch.tensor([1.5, 18.0]))


def test_fisher_statistics_are_squared_per_example_gradients(tiny_context):
    from harness.merging.statistics import diagonal_fisher

    pool = tiny_context.pool
    task = pool.tasks[0]
    model = tiny_context.build_model(pool.expert_state(task))
    head = tiny_context.head(task)
    batch = next(iter(tiny_context.labeled_batches(task, "train", limit=3)))
    sums, count = diagonal_fisher(model, head, [batch], tiny_context.device, labels="empirical")
    assert count == 3
    name = next(n for n, _ in model.named_parameters() if n.endswith("fc1.weight"))
    expected = torch.zeros_like(dict(model.named_parameters())[name])
    for x, y in zip(*batch):
        model.zero_grad()
        torch.log_softmax(head(model(x[None])), -1)[0, y].backward()
        expected += dict(model.named_parameters())[name].grad ** 2
    assert _close(sums[name], expected, atol=1e-6)


def test_causal_lm_fisher_squares_per_sequence_answer_gradients_and_ignores_padding():
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.merging.statistics import causal_lm_fisher

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16, pad_token_id=0,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    pad = 0
    sequences = [[5, 6, 7, 8, 9], [3, 4, 10]]  # prompt lengths 3 and 1
    prompts = torch.tensor([3, 1])
    padded = torch.tensor([[5, 6, 7, 8, 9], [3, 4, 10, pad, pad]])
    sums, count = causal_lm_fisher(
        model, [(padded, prompts)], torch.device("cpu"), lambda ids: ids != pad,
        labels="empirical",
    )  # fmt: skip
    assert count == 2
    name = "model.layers.0.mlp.down_proj.weight"
    expected = torch.zeros_like(dict(model.named_parameters())[name])
    for ids, start in zip(sequences, prompts.tolist()):
        model.zero_grad()
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
        sum(log_probs[j - 1, ids[j]] for j in range(start, len(ids))).backward()
        expected += dict(model.named_parameters())[name].grad ** 2
    assert _close(sums[name], expected, atol=1e-7)
    assert expected.abs().sum() > 0
    # sampled labels: seeded, and the same for the same generator seed
    runs = [
        causal_lm_fisher(
            model, [(padded, prompts)], torch.device("cpu"), lambda ids: ids != pad,
            generator=torch.Generator().manual_seed(3),
        )[0][name]
        for _ in range(2)
    ]  # fmt: skip
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], sums[name])


# --------------------------------------------------------------------------- AdaMerging
def test_adamerging_coefficient_shapes_and_init_reproduce_task_arithmetic(tiny_context):
    mixer = TaskVectorMixer(tiny_context)
    assert mixer.initial("task", 0.3).shape == (3,)
    assert mixer.initial("layer", 0.3).shape == (len(tiny_context.pool.mergeable_names()), 3)
    arithmetic = _run("task_arithmetic", tiny_context, scaling=0.3).state
    for granularity in ("task", "layer"):
        solution = _run("adamerging", tiny_context, granularity=granularity, steps=0)
        for key, value in arithmetic.items():
            assert _close(solution.state[key], value), key


@pytest.mark.parametrize("granularity", ["task", "layer"])
def test_adamerging_lowers_the_entropy(tiny_context, granularity):
    solution = _run(
        "adamerging", tiny_context, granularity=granularity, steps=8, lr=0.05, batch_size=32
    )
    info = solution.info
    assert info["entropy_last"] < info["entropy_first"]
    coefficients = torch.tensor(info["coefficients"])
    expected = (3,) if granularity == "task" else (len(tiny_context.pool.mergeable_names()), 3)
    assert coefficients.shape == expected
    assert coefficients.min() >= 0 and coefficients.max() <= 1


def test_entropy_of_uniform_and_certain_predictions():
    assert _close(entropy(torch.zeros(2, 4)), torch.log(torch.tensor(4.0)))
    assert entropy(torch.tensor([[100.0, 0.0, 0.0]])) < 1e-6


# --------------------------------------------------------------------------- Greedy soup
def test_greedy_soup_never_adds_an_expert_that_lowers_validation_accuracy(
    tiny_context, monkeypatch
):
    import methods.merging.greedy_soup as greedy

    # Validation accuracy by soup composition: c is the best expert; adding a to the
    # soup would lower its accuracy, adding b raises it.
    table = {
        ("c",): 60.0,
        ("a",): 50.0,
        ("b",): 40.0,
        ("a", "c"): 55.0,
        ("b", "c"): 65.0,
    }
    seen = []

    def accuracy(context, members, limit):
        seen.append(tuple(members))
        return table[tuple(sorted(members))]

    monkeypatch.setattr(greedy, "soup_accuracy", accuracy)
    solution = _run("greedy_soup", tiny_context)
    assert solution.info["soup"] == ["c", "b"]
    assert seen[3:] == [("c", "a"), ("c", "b")]  # best-first order after the individuals
    trajectory = solution.info["trajectory"]
    assert [step["added"] for step in trajectory] == [True, False, True]
    pool = tiny_context.pool
    soup = {n: (pool.expert_tensor("b", n) + pool.expert_tensor("c", n)) / 2 for n in pool.names}
    for key, value in soup.items():
        if value.is_floating_point():
            assert _close(solution.state[key], value), key


def test_greedy_soup_on_the_tiny_suite_keeps_its_invariant(tiny_context):
    solution = _run("greedy_soup", tiny_context, validation_limit=16)
    trajectory = solution.info["trajectory"]
    best = trajectory[0]["score"]
    assert trajectory[0]["expert"] == max(
        solution.info["individual"], key=solution.info["individual"].get
    )
    for step in trajectory[1:]:
        assert step["added"] == (step["score"] >= best)
        best = max(best, step["score"]) if step["added"] else best
    assert solution.info["soup"] == [s["expert"] for s in trajectory if s["added"]]


# ----------------------------------------------------------------------------- Ensemble
def test_ensemble_averages_the_experts_logits(tiny_context):
    solution = _run("ensemble", tiny_context)
    pool = tiny_context.pool
    inputs = next(iter(tiny_context.unlabeled_batches("a", "test", limit=8)))
    for task in pool.tasks:
        head = tiny_context.head(task)
        with torch.no_grad():
            got = head(solution.model_for(task, tiny_context)(inputs))
            expected = torch.stack(
                [head(tiny_context.build_model(pool.expert_state(t))(inputs)) for t in pool.tasks]
            ).mean(0)
        assert _close(got, expected, atol=1e-5)
    assert solution.extra_parameters == 2 * pool.num_parameters()


# ------------------------------------------------------------- learned soups and aTLAS
def _soup(context: MethodContext, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Σ_t α_t θ_t, with α per task [T] or per block and task [B, T]."""
    pool = context.pool
    result = {}
    for index, name in enumerate(pool.mergeable_names()):
        alpha = weights if weights.dim() == 1 else weights[index]
        result[name] = sum(a * pool.expert_tensor(t, name) for a, t in zip(alpha, pool.tasks))
    return result


def test_learned_soup_starts_uniform_and_stays_on_the_simplex(tiny_context):
    uniform = _run("learned_soup", tiny_context, steps=0).state
    average = _run("weight_average", tiny_context).state
    for key, value in average.items():
        assert _close(uniform[key], value), key
    solution = _run("learned_soup", tiny_context, granularity="layer", steps=3, lr=0.5)
    weights = torch.tensor(solution.info["weights"])
    assert weights.shape == (len(tiny_context.pool.mergeable_names()), 3)
    assert torch.all(weights >= 0) and _close(weights.sum(-1), torch.ones(weights.shape[0]))
    for key, value in _soup(tiny_context, weights).items():
        assert _close(solution.state[key], value), key


def test_atlas_starts_at_the_pretrained_model_and_lowers_the_loss(tiny_context):
    # the authors initialise every block coefficient to 0: step 0 is the pretrained model
    start = _run("atlas", tiny_context, steps=0).state
    pretrained = _run("task_arithmetic", tiny_context, scaling=0.0).state
    for key, value in pretrained.items():
        assert _close(start[key], value), key
    start = _run("atlas", tiny_context, steps=0, init=0.3).state
    arithmetic = _run("task_arithmetic", tiny_context, scaling=0.3).state
    for key, value in arithmetic.items():
        assert _close(start[key], value), key
    solution = _run("atlas", tiny_context, steps=3, lr=0.05)
    assert solution.info["loss_last"] < solution.info["loss_first"]
    assert torch.tensor(solution.info["coefficients"]).shape == (
        len(tiny_context.pool.mergeable_names()),
        3,
    )


def test_mehl_soup_moves_on_the_hyperplane_and_returns_its_soup(tiny_context):
    solution = _run("mehl_soup", tiny_context, rounds=2, steps=2, lr=0.5)
    alpha = torch.tensor(solution.info["alpha"])
    assert _close(alpha.sum(), torch.tensor(1.0))
    assert not _close(alpha, torch.full((3,), 1 / 3))  # the rounds moved it
    assert all(len(r["experts"]) == 2 for r in solution.info["rounds"])
    for key, value in _soup(tiny_context, alpha).items():
        assert _close(solution.state[key], value, atol=1e-5), key


# ----------------------------------------------------------------------------- Twin
def test_low_rank_keeps_the_best_approximation_and_full_rank_is_exact():
    from methods.routing.twin import low_rank

    generator = torch.Generator().manual_seed(3)
    matrix = torch.randn(6, 4, generator=generator)
    a, b = low_rank(matrix, 4)
    assert _close(a @ b, matrix)
    a1, b1 = low_rank(matrix, 1)
    singular = torch.linalg.svdvals(matrix)
    assert a1.shape == (6, 1) and b1.shape == (1, 4)
    assert _close(torch.linalg.matrix_norm(matrix - a1 @ b1), singular[1:].norm())


def test_twin_routes_per_input_and_full_rank_reproduces_the_experts(tiny_context):
    solution = _run("twin", tiny_context, rank=64, steps=5)
    pool = tiny_context.pool
    model = solution.model_for("a", tiny_context)
    inputs = torch.cat(
        [next(iter(tiny_context.unlabeled_batches(t, "test", limit=2))) for t in pool.tasks]
    )
    with torch.no_grad():
        weights = model.route(inputs)
        assert weights.shape == (6, 3) and _close(weights.sum(-1), torch.ones(6))
        for index, task in enumerate(pool.tasks):
            expert = pool.expert_state(task)
            dense = model.dense_state(index)
            routed = [*model.factors, *model.dense]
            for name in routed:  # full rank: the exclusive knowledge is stored exactly
                assert _close(dense[name], expert[name], atol=1e-5), name
            model.fixed = torch.nn.functional.one_hot(torch.tensor([index]), 3).float()
            got = model(inputs)
            model.fixed = None
            expected = tiny_context.build_model(dense)(inputs)
            assert _close(got, expected, atol=1e-5)
        # Per-input routing: each input's output is its own mixture.
        mixed = model(inputs)
        for row in range(inputs.shape[0]):
            model.fixed = weights[row : row + 1]
            assert _close(model(inputs[row : row + 1]), mixed[row : row + 1], atol=1e-5)
        model.fixed = None
    stored = sum(a.numel() + b.numel() for a, b in model.factors.values())
    stored += sum(v.numel() for v in model.dense.values())
    stored += sum(p.numel() for p in model.router.parameters())
    assert solution.extra_parameters == stored


def test_ensemble_under_a_normalising_zero_shot_head_predicts_as_logit_averaging(tiny_context):
    from harness.evaluation.zeroshot import ZeroShotHead
    from methods.baselines.ensemble import FeatureEnsemble

    pool = tiny_context.pool
    members = [tiny_context.build_model(pool.expert_state(t)) for t in pool.tasks]
    head = ZeroShotHead(torch.randn(5, 16))
    inputs = next(iter(tiny_context.unlabeled_batches("c", "test", limit=16)))
    with torch.no_grad():
        got = head(FeatureEnsemble(members, normalize=True)(inputs))
        mean = torch.stack([head(member(inputs)) for member in members]).mean(0)
    ratio = got / mean
    assert torch.all(ratio > 0) and _close(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)
    assert torch.equal(got.argmax(-1), mean.argmax(-1))


def test_gram_matrices_leave_padding_out_so_batching_does_not_change_them():
    """Right-padded text batches: with the suite's token mask, XᵀX and the row count over a
    padded batch equal those of the examples run one by one without padding."""
    torch.manual_seed(0)
    pad = 0
    model = torch.nn.Sequential(torch.nn.Embedding(20, 6), torch.nn.Linear(6, 4))
    layers = linear_layers(model)
    examples = [torch.tensor([3, 5, 7, 9]), torch.tensor([2, 4]), torch.tensor([8])]
    padded = torch.nn.utils.rnn.pad_sequence(examples, batch_first=True, padding_value=pad)
    cpu = torch.device("cpu")
    masked, masked_rows = input_grams(
        model, [padded], cpu, layers, token_mask=lambda ids: ids != pad
    )
    alone, alone_rows = input_grams(model, [e[None] for e in examples], cpu, layers)
    unmasked, unmasked_rows = input_grams(model, [padded], cpu, layers)
    name = "1.weight"
    assert masked_rows[name] == alone_rows[name] == 7
    torch.testing.assert_close(masked[name], alone[name])
    assert unmasked_rows[name] == 12  # without the mask, 5 padding rows would enter
    assert not torch.allclose(unmasked[name], alone[name])
