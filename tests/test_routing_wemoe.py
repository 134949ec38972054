"""WEMoE (methods/routing/wemoe.py): the weight-ensembling MLP's equation, per-input
routing, its start at task arithmetic, what it stores and that it never reads test labels.
The shared contract (tests/test_method_contract.py) runs it like every other method."""

from __future__ import annotations

import re

import pytest
import torch

from harness.method import MethodContext
from harness.registry import METHODS
from harness.suite import SuiteContext
from methods.routing.wemoe import WeightEnsemblingMLP, WEMoEModel, is_mlp, upscale

LAMBDA = 0.7


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)


def _inputs(context) -> torch.Tensor:
    """A mixed-task stream: two unlabeled test inputs of every task."""
    return torch.cat(
        [next(iter(context.unlabeled_batches(t, "test", limit=2))) for t in context.tasks]
    )


def _mlp_state(context, shared: dict[str, torch.Tensor], task: str, scale: float) -> dict:
    """``shared`` with every MLP tensor replaced by θ_0 + scale·τ_task."""
    pool = context.pool
    state = dict(shared)
    for name in pool.mergeable_names():
        if any(is_mlp(prefix) for prefix in _prefixes(name)):
            base = pool.base_tensor(name)
            state[name] = base + scale * (pool.expert_tensor(task, name) - base)
    return state


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _shared_state(context, scale: float) -> dict[str, torch.Tensor]:
    """Task arithmetic θ_0 + scale Σ_t τ_t (what WEMoE keeps outside the MLPs)."""
    pool = context.pool
    state = dict(pool.base_state())
    for name in pool.mergeable_names():
        base = pool.base_tensor(name)
        state[name] = base + scale * sum(pool.expert_tensor(t, name) - base for t in pool.tasks)
    return state


def test_one_hot_routing_gives_the_mlp_of_theta0_plus_lambda_tau_i(tiny_context):
    model, _, _ = upscale(tiny_context, 0.3, 2)
    layers = model.moe_layers()
    assert len(layers) == 2  # the tiny CLIP tower's two blocks
    inputs = _inputs(tiny_context)
    shared = _shared_state(tiny_context, 0.3)
    with torch.no_grad():
        for index, task in enumerate(tiny_context.tasks):
            fixed = LAMBDA * torch.nn.functional.one_hot(torch.tensor([index]), 3).float()
            for layer in layers:
                layer.fixed = fixed
            got = model(inputs)
            expected = tiny_context.build_model(_mlp_state(tiny_context, shared, task, LAMBDA))
            assert _close(got, expected(inputs)), task
            # one block's MLP alone, on arbitrary hidden states
            hidden = torch.randn(4, 5, 16, generator=torch.Generator().manual_seed(index))
            first = next(n for n, _ in expected.named_modules() if is_mlp(n))
            reference = expected.get_submodule(first)
            assert _close(layers[0](hidden), reference(hidden)), task
        for layer in layers:
            layer.fixed = None


def test_routing_is_per_input_and_a_depth0_router_starts_at_task_arithmetic(tiny_context):
    model, _, _ = upscale(tiny_context, 0.3, 2)
    inputs = _inputs(tiny_context)
    with torch.no_grad():
        mixed = model(inputs)
        weights = [layer.last_weights.clone() for layer in model.moe_layers()]
        assert weights[0].shape == (6, 3)
        assert not torch.equal(weights[0][0], weights[0][-1])  # the router reads the input
        for row in range(inputs.shape[0]):  # each input's output is its own mixture
            assert _close(model(inputs[row : row + 1]), mixed[row : row + 1])
        constant, _, _ = upscale(tiny_context, 0.3, 0)
        merged = tiny_context.build_model(_shared_state(tiny_context, 0.3))
        assert _close(constant(inputs), merged(inputs))


def test_wemoe_trains_routers_on_unlabeled_test_inputs_only(tiny_context, monkeypatch):
    entry = METHODS.get("wemoe")
    assert entry.family == "routing"

    def routers(solution) -> list[torch.Tensor]:
        model = solution.task_modules("a")
        return [
            p.detach().clone() for layer in model.moe_layers() for p in layer.router.parameters()
        ]

    torch.manual_seed(0)
    solution = entry.obj(tiny_context, **entry.resolve_params({"steps": 2, "lr": 1e-2}))
    model = solution.task_modules("a")
    assert isinstance(model, WEMoEModel) and solution.task_modules("c") is model  # no task id
    trained = routers(solution)
    initial = [
        p
        for layer in upscale(tiny_context, 0.3, 2)[0].moe_layers()
        for p in layer.router.parameters()
    ]
    assert any(not torch.equal(a, b) for a, b in zip(trained, initial))  # the routers moved
    # stored beyond one model: every expert's MLP task vectors plus the routers
    pool = tiny_context.pool
    mlp = [n for n in pool.mergeable_names() if ".mlp." in n]
    vectors = 3 * sum(pool.base_tensor(n).numel() for n in mlp)
    assert solution.extra_parameters == vectors + sum(p.numel() for p in trained)
    assert all(isinstance(m, WeightEnsemblingMLP) for m in model.moe_layers())

    suite = tiny_context.suite
    real = suite.batches

    def poisoned(task, split, **kwargs):
        for inputs, labels in real(task, split, **kwargs):
            yield inputs, (torch.randperm(labels.numel()) if split == "test" else labels)

    monkeypatch.setattr(suite, "batches", poisoned)
    torch.manual_seed(0)
    again = entry.obj(tiny_context, **entry.resolve_params({"steps": 2, "lr": 1e-2}))
    assert all(torch.equal(a, b) for a, b in zip(routers(again), trained))


# ---------------------------------------------------------------------------- BERT (minitext)
BERT_MLP = re.compile(r"encoder\.layer\.\d+\.(intermediate|output)\.dense\.")


@pytest.fixture
def minitext_context(monkeypatch) -> MethodContext:
    """The real MiniLM (a BertModel) with minitext's small test build's experts."""
    from tasks.text.minitext import suite
    from tests.test_minitext import SMALL_RECIPE, _require_data

    _require_data()
    monkeypatch.setattr(suite, "RECIPE", SMALL_RECIPE)
    minitext = suite.MiniText(SuiteContext(progress=False))
    minitext.prepare()
    minitext.select_tasks(["fortune_topic", "gloss_pos", "drug_sentiment"])
    return MethodContext(minitext, minitext.pool(), torch.device("cpu"), seed=0, progress=False)


def test_bert_feed_forwards_are_upscaled_with_the_same_equation(minitext_context):
    """A BERT layer's MLP is split over ``intermediate`` and ``output.dense`` (the attention
    block's ``output.dense`` is not part of it); one-hot routing gives θ_0 + λτ_i there."""
    context = minitext_context
    model, _, stored = upscale(context, 0.3, 2)
    assert len(model.moe_layers()) == 6  # MiniLM-L6's six layers
    pool = context.pool
    mlp = [name for name in pool.mergeable_names() if BERT_MLP.match(name)]
    assert len(mlp) == 6 * 4 and not any("attention" in name for name in mlp)
    assert stored > 3 * sum(pool.base_tensor(name).numel() for name in mlp)  # + routers
    shared = _shared_state(context, 0.3)
    inputs, _ = next(iter(context.suite.batches("gloss_pos", "validation", batch_size=4)))
    with torch.no_grad():
        for index, task in enumerate(context.tasks):
            fixed = LAMBDA * torch.nn.functional.one_hot(torch.tensor([index]), 3).float()
            for layer in model.moe_layers():
                layer.fixed = fixed
            state = dict(shared)
            for name in mlp:
                base = pool.base_tensor(name)
                state[name] = base + LAMBDA * (pool.expert_tensor(task, name) - base)
            expected = context.build_model(state)(inputs)
            assert _close(model(inputs), expected, atol=1e-4), task
