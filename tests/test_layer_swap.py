"""layer_swap on a pool of tiny real Llamas: the merged state is the per-layer composition
the paper describes, and counts or roles that do not fit fail in one line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness.method import MethodContext
from harness.registry import METHODS
from harness.weights.pool import Checkpoint, ExpertPool
from methods.merging.layer_swap import LayerSwapError, layer_index, layer_sources
from tests.llama_mirror import tiny_llama, tiny_tokenizer

LAYERS = 6


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> ExpertPool:
    """A base and three experts (math, lang, other): each its own random Llama, so every
    tensor tells which checkpoint it came from."""
    root: Path = tmp_path_factory.mktemp("llamas")
    tokenizer = tiny_tokenizer()
    checkpoints = {}
    for seed, name in enumerate(["base", "math", "lang", "other"]):
        model = tiny_llama(tokenizer, seed=seed, layers=LAYERS)
        model.save_pretrained(root / name)
        checkpoints[name] = Checkpoint(root / name, f"tiny/{name}")
    experts = {name: checkpoints[name] for name in ("math", "lang", "other")}
    return ExpertPool(checkpoints["base"], experts)


def _context(pool: ExpertPool, roles: dict[str, str] | None = None) -> MethodContext:
    suite = SimpleNamespace(name="tiny-llama", roles=roles or {})
    return MethodContext(suite, pool, torch.device("cpu"), progress=False)  # type: ignore[arg-type]


def test_layer_sources_follow_the_paper_layout():
    assert layer_sources(6, 1, 1, 1) == [
        "language", "average", "math", "math", "average", "language"
    ]  # fmt: skip
    assert layer_sources(6, 2, 0, 1) == ["language", "language", "average", "math", "math", "math"]
    assert layer_sources(6, 1, 2, 0) == ["language", "math", "math", "math", "language", "language"]
    assert layer_sources(4, 0, 0, 1) == ["average", "math", "math", "math"]
    assert layer_index("model.layers.11.mlp.up_proj.weight") == 11
    assert layer_index("model.embed_tokens.weight") is None


@pytest.mark.parametrize(
    ("bottom", "top", "transition"), [(1, 1, 1), (2, 0, 1), (1, 2, 0), (0, 0, 1)]
)
def test_swapped_state_is_the_per_layer_composition(pool, bottom, top, transition):
    method = METHODS.get("layer_swap").obj
    solution = method(
        _context(pool, {"math": "math", "language": "lang"}),
        bottom=bottom,
        top=top,
        transition=transition,
    )
    sources = layer_sources(LAYERS, bottom, top, transition)
    math, lang = pool.expert_state("math"), pool.expert_state("lang")
    state = solution.state
    assert set(state) == set(pool.names)
    for name, tensor in state.items():
        index = layer_index(name)
        if index is None:  # embeddings from the language expert, norm and head as the last
            source = "language" if "embed" in name else sources[-1]
        else:
            source = sources[index]
        expected = {"math": math[name], "language": lang[name]}.get(source)
        if expected is None:
            expected = (math[name] + lang[name]) / 2
        torch.testing.assert_close(tensor, expected, msg=lambda m, name=name: f"{name}: {m}")
    assert state["model.embed_tokens.weight"].equal(lang["model.embed_tokens.weight"])
    head_from = lang if top > 0 else math
    assert state["lm_head.weight"].equal(head_from["lm_head.weight"])
    assert solution.info["layers"] == sources
    math_ends = method(
        _context(pool, {"math": "math", "language": "lang"}),
        bottom=bottom, top=top, transition=transition, embeddings="math",
    ).state  # fmt: skip
    assert math_ends["model.embed_tokens.weight"].equal(math["model.embed_tokens.weight"])
    # the third expert of the pool plays no part
    other = pool.expert_state("other")
    assert not any(state[n].equal(other[n]) for n in state if state[n].ndim == 2)  # norms: ones


def test_explicit_roles_override_the_suites(pool):
    method = METHODS.get("layer_swap").obj
    context = _context(pool, {"math": "math", "language": "lang"})
    swapped = method(context, bottom=1, top=0, transition=0, math_expert="other")
    other, lang = pool.expert_state("other"), pool.expert_state("lang")
    assert swapped.state["model.layers.5.mlp.up_proj.weight"].equal(
        other["model.layers.5.mlp.up_proj.weight"]
    )
    assert swapped.state["model.layers.0.mlp.up_proj.weight"].equal(
        lang["model.layers.0.mlp.up_proj.weight"]
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bottom": 3, "top": 2, "transition": 1}, "leave no math-expert layer in a 6-layer"),
        ({"bottom": 5, "top": 0, "transition": 1}, "leave no math-expert layer"),
        ({"bottom": 1, "top": 1, "transition": 1, "math_expert": "nope"}, "'nope' is not in"),
        ({"bottom": 1, "top": 1, "transition": 1, "language_expert": "math"}, "both 'math'"),
    ],
)
def test_counts_or_roles_that_do_not_fit_fail_in_one_line(pool, settings, message):
    method = METHODS.get("layer_swap").obj
    with pytest.raises(LayerSwapError, match=message) as error:
        method(_context(pool, {"math": "math", "language": "lang"}), **settings)
    assert "\n" not in str(error.value)


def test_a_suite_without_roles_is_told_how_to_name_them(pool):
    method = METHODS.get("layer_swap").obj
    with pytest.raises(LayerSwapError, match="declares no roles") as error:
        method(_context(pool), bottom=1, top=1, transition=1)
    assert "--set math_expert=" in str(error.value) and "\n" not in str(error.value)
