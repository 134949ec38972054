"""The method contract, as scikit-learn's ``check_estimator``: one suite, parametrised over
every registered method, that a new method passes without writing a test.

Each method runs on the tiny three-task suite (a real streaming pool of tiny CLIP vision
towers) with its paper defaults, and must:

* declare legal defaults and grids, a paper link and a known family;
* give a model for every task whose state keeps the base's names, shapes and dtypes,
  with no NaN or inf, and that the suite can score;
* be deterministic under a seed (same seed → same weights and same scores);
* satisfy the identity its math implies, where one is listed in ``IDENTITIES`` (e.g. one
  expert and λ = 1 returns that expert);
* give the same weights when the pool streams matrices in row slices (a merge declared
  ``rowwise`` must not look beyond its rows; a random one may draw differently per
  slice, but deterministically);
* surface a mismatched expert as a one-line CheckpointError on the run path;
* if it needs exactly N experts (``register_method(..., experts=N)``), refuse another
  number with a one-line HarnessError.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from harness.errors import CheckpointError, HarnessError
from harness.method import MethodContext, Solution
from harness.registry import FAMILIES, METHODS, SUITES, Entry
from harness.suite import SuiteContext
from harness.weights.pool import Checkpoint, ExpertPool
from tests.tiny_suite import TinySuite

# Routers over outcome tables score a table, not weights: tests/test_routing_contract.py
# checks every one of them (determinism, no test outcomes read, oracle ≥ router ≥ random).
# Transferability estimators rank a model zoo and return no model: their own contract
# suite (tests/test_transferability_contract.py) checks every one of them alike.
# Methods that need a causal LM ("lm" alone, e.g. fusellm) cannot run on this vision
# suite: tests/test_distillation_contract.py runs them on a tiny Llama suite.
NAMES = [
    name
    for name in METHODS.names()
    if "outcomes" not in METHODS.get(name).needs
    and "lm" not in METHODS.get(name).needs
    and METHODS.get(name).family != "transferability"
]
SCORE_LIMIT = 16  # validation examples per task when comparing scores

# Identities the math implies: method → (pool, hyperparameters, expected model per task).
#   pool:     "all" = the three experts; "one" = only the first expert;
#             "same" = every expert replaced by the first one (θ_t = θ_0 + τ for all t)
#   expected: "experts" = each task's own expert; "base" = the pretrained model
IDENTITIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "pretrained": ("all", {}, "base"),
    "individual": ("all", {}, "experts"),
    "weight_average": ("same", {}, "experts"),
    "task_arithmetic": ("one", {"scaling": 1.0}, "experts"),
    "ties": ("one", {"scaling": 1.0, "density": 1.0}, "experts"),
    "dare_ta": ("one", {"scaling": 1.0, "drop": 0.0}, "experts"),
    "dare_ties": ("one", {"scaling": 1.0, "drop": 0.0, "density": 1.0}, "experts"),
    "breadcrumbs": ("one", {"scaling": 1.0, "bottom": 0.0, "top": 0.0}, "experts"),
    "della": ("one", {"scaling": 1.0, "drop": 0.0, "epsilon": 0.0}, "experts"),
    "magmax": ("same", {"scaling": 1.0}, "experts"),
    "slerp": ("same", {}, "experts"),
    "model_stock": ("same", {}, "experts"),
    "consensus": ("one", {"scaling": 1.0, "k": 1}, "experts"),
    "tall_masks": ("one", {"scaling": 1.0}, "experts"),
    "emr": ("same", {}, "experts"),
    "pcb": ("one", {"scaling": 1.0, "ratio": 1.0}, "experts"),
    "tsv": ("one", {"scaling": 1.0}, "experts"),
    "peru_fft": ("all", {"density": 1.0}, "experts"),
    "peru_lora": ("all", {"rank": 100000}, "experts"),
    # data-based: any weighting of identical experts is that expert; a single expert at
    # coefficient 1 with no optimisation steps is that expert
    "fisher": ("same", {}, "experts"),
    "regmean": ("same", {}, "experts"),
    "regmean_pp": ("same", {}, "experts"),
    "adamerging": ("one", {"init": 1.0, "steps": 0}, "experts"),
    "atlas": ("one", {"init": 1.0, "steps": 0}, "experts"),
    "learned_soup": ("same", {}, "experts"),
    "mehl_soup": ("same", {}, "experts"),
    "greedy_soup": ("same", {}, "experts"),
    # a flattened spectrum has no expert-level identity; at α = 0 every tensor, matrix or
    # not, must stay the base
    "iso_c": ("all", {"scaling": 0.0}, "base"),
    "iso_cts": ("all", {"scaling": 0.0}, "base"),
    # swapping layers between identical experts gives that expert back
    "layer_swap": ("same", {}, "experts"),
    "checkpoint_average": ("same", {}, "experts"),
    # distillation: no steps return the student's init (the base, or a merge of one
    # expert at λ = 1, which is that expert)
    "multi_teacher_kd": (
        "one",
        {"steps": 0, "init": "task_arithmetic", "init_scaling": 1.0},
        "experts",
    ),
    "average_logit_kd": ("all", {"steps": 0}, "base"),
    "feature_distillation": ("all", {"steps": 0}, "base"),
}


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy CI machine thread
    oversubscription makes the contract many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _suite() -> TinySuite:
    TinySuite.name = "tiny3"
    suite = TinySuite(SuiteContext(progress=False))
    suite.prepare()
    return suite


def _context(entry: Entry, suite: TinySuite, pool: ExpertPool, seed: int = 0) -> MethodContext:
    if entry.experts is not None:
        pool = pool.subset(pool.tasks[: entry.experts])
    return MethodContext(suite, pool, torch.device("cpu"), seed=seed, progress=False)


def _identical_pool(pool: ExpertPool) -> ExpertPool:
    first = pool.experts[pool.tasks[0]]
    return ExpertPool(pool.base, {task: first for task in pool.tasks})


def _task_states(solution: Solution, context: MethodContext) -> dict[str, Mapping[str, Any]]:
    """Per task, the weights that serve it (task_modules give their state_dict)."""
    states = {}
    for task in context.tasks:
        if solution.state is not None:
            states[task] = solution.state
        elif solution.task_states is not None:
            states[task] = solution.task_states(task)
        else:
            module = solution.task_modules(task)
            states[task] = {k: v.detach() for k, v in module.state_dict().items()}
    return states


def _scores(solution: Solution, context: MethodContext) -> dict[str, float]:
    suite = context.suite
    return {
        task: suite.evaluate(
            solution.model_for(task, context), task, "validation", limit=SCORE_LIMIT
        )[suite.metric]
        for task in context.tasks
    }


def _settings(entry: Entry, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Paper defaults, with the method's declared smoke settings (``smoke=``) on top."""
    return entry.resolve_params({**entry.smoke, **(overrides or {})})


def _run_states(
    name: str, *, seed: int = 0, chunk_elements: int | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Per-task weights of one run with the defaults (and smoke settings)."""
    entry = METHODS.get(name)
    suite = _suite()
    pool = suite.pool()
    if chunk_elements is not None:
        pool.chunk_elements = chunk_elements
    context = _context(entry, suite, pool, seed=seed)
    torch.manual_seed(seed)
    solution = entry.obj(context, **_settings(entry))
    return {task: dict(state) for task, state in _task_states(solution, context).items()}


def _same_states(a: Mapping[str, Mapping[str, torch.Tensor]], b: Mapping) -> bool:
    return all(torch.equal(tensor, b[task][key]) for task in a for key, tensor in a[task].items())


@functools.cache
def _default_run(
    name: str,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, float], int, str]:
    """One run with the defaults (and smoke settings) and seed 0, shared by the tests."""
    entry = METHODS.get(name)
    suite = _suite()
    context = _context(entry, suite, suite.pool())
    torch.manual_seed(0)
    solution = entry.obj(context, **_settings(entry))
    assert isinstance(solution, Solution), f"{name} must return a harness.method.Solution"
    kind = "modules" if solution.task_modules is not None else "states"
    states = {task: dict(state) for task, state in _task_states(solution, context).items()}
    return states, _scores(solution, context), int(solution.extra_parameters), kind


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", NAMES)
def test_registration_is_complete(name):
    entry = METHODS.get(name)
    assert entry.family in FAMILIES
    assert entry.reference.startswith(("http://", "https://")), f"{name} needs a paper link"
    assert entry.description, f"{name} needs a one-line description (or a docstring)"
    for key, param in entry.params.items():
        assert param.check(key, param.default) == param.default
        for value in param.grid:
            param.check(key, value)  # every grid value is legal
    assert entry.experts is None or entry.experts >= 1


@pytest.mark.parametrize("name", NAMES)
def test_models_for_every_task_keep_names_shapes_dtypes(name):
    suite = _suite()
    base = suite.pool().base_state()
    states, scores, extra, kind = _default_run(name)
    assert states, f"{name} produced no model"
    assert set(scores) == set(states), f"{name}: every task needs a model"
    for task, state in states.items():
        if kind == "states":  # a merged state: the base's names, shapes and dtypes
            assert set(state) == set(base), f"{name}/{task}: tensor names differ from the base"
            for key, tensor in state.items():
                assert tensor.shape == base[key].shape, f"{name}/{task}: {key} changed shape"
                assert tensor.dtype == base[key].dtype, f"{name}/{task}: {key} changed dtype"
        for key, tensor in state.items():
            if tensor.is_floating_point():
                assert torch.isfinite(tensor).all(), f"{name}/{task}: {key} has NaN/inf"
    assert all(0.0 <= score <= 100.0 for score in scores.values())
    assert extra >= 0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights_and_scores(name):
    states, scores, _, _ = _default_run(name)
    entry = METHODS.get(name)
    suite = _suite()
    context = _context(entry, suite, suite.pool())
    torch.manual_seed(0)
    again = entry.obj(context, **_settings(entry))
    for task, state in _task_states(again, context).items():
        for key, tensor in state.items():
            assert torch.equal(tensor, states[task][key]), f"{name}/{task}: {key} differs"
    assert _scores(again, context) == scores


@pytest.mark.parametrize("name", NAMES)
def test_identity_implied_by_the_math(name):
    if name not in IDENTITIES:
        pytest.skip(f"no identity listed for {name} (add one to IDENTITIES)")
    which, overrides, expected = IDENTITIES[name]
    entry = METHODS.get(name)
    suite = _suite()
    pool = suite.pool()
    if which == "one":
        pool = pool.subset(pool.tasks[:1])
    elif which == "same":
        pool = _identical_pool(pool)
    context = _context(entry, suite, pool)
    solution = entry.obj(context, **_settings(entry, overrides))
    for task, state in _task_states(solution, context).items():
        target = (
            context.pool.base_state() if expected == "base" else context.pool.expert_state(task)
        )
        for key, tensor in state.items():
            torch.testing.assert_close(
                tensor.float(),
                target[key].float(),
                rtol=1e-4,
                atol=1e-5,
                msg=lambda m, key=key, task=task: f"{name}/{task}: {key}: {m}",
            )


SLICED = 40  # entries per piece: every matrix of the tiny tower streams in 1–2 row slices


def _check_row_slices(name: str) -> None:
    whole, _, _, _ = _default_run(name)
    sliced = _run_states(name, chunk_elements=SLICED)
    if _same_states(sliced, whole):
        return
    random = not _same_states(_run_states(name, seed=1), whole)
    assert random, (
        f"{name}: merging in row slices changed the weights; a merge whose rows depend on "
        "other rows must not be declared rowwise"
    )
    assert _same_states(_run_states(name, chunk_elements=SLICED), sliced), (
        f"{name}: merging in row slices is not deterministic under a seed"
    )


@pytest.mark.parametrize("name", NAMES)
def test_row_slices_give_the_same_weights(name):
    _check_row_slices(name)


def test_row_slice_check_catches_a_false_rowwise_claim(monkeypatch):
    """A per-tensor normalisation declared rowwise must fail the check above."""
    from harness.merging.stream import stack, tensorwise

    @tensorwise(rowwise=True)
    def normalised_sum(group, scaling: float = 0.1):
        total = stack(group.task_vectors).sum(dim=0)
        return group.base + scaling * total / total.norm().clamp(min=1e-12)

    entry = Entry(name="normalised_sum", kind="method", obj=normalised_sum, family="merging")
    monkeypatch.setitem(METHODS._entries, "normalised_sum", entry)
    with pytest.raises(AssertionError, match="must not be declared rowwise"):
        _check_row_slices("normalised_sum")


class MismatchedSuite(TinySuite):
    """The tiny suite with one expert whose weights do not fit the base."""

    def pool(self) -> ExpertPool:
        base = Checkpoint(self.root / "base.safetensors", "tiny/base")
        state = base.state_dict()
        name = next(key for key, value in state.items() if value.ndim == 2)
        state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
        bad = self.root.parent / "mismatched-expert.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(bad))
        experts = {
            task: Checkpoint(self.root / f"{task}.safetensors", f"tiny/{task}")
            for task in self.tasks
        }
        experts[self.tasks[-1]] = Checkpoint(bad, "tiny/mismatched")
        return ExpertPool(base, experts)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_expert_is_a_checkpoint_error(name, monkeypatch, tmp_path):
    from harness.run.runner import RunSpec, run

    SUITES.discover()
    entry = Entry(name="tiny3bad", kind="suite", obj=MismatchedSuite, family="suite")
    monkeypatch.setitem(SUITES._entries, "tiny3bad", entry)
    experts = METHODS.get(name).experts  # a fixed-count method gets that many tasks
    spec = RunSpec(  # the run path: suite, pool, then the method
        method=name,
        suite="tiny3bad",
        only=list(MismatchedSuite.tasks)[:experts] if experts else None,
        select="defaults",
        device="cpu",
        results_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(CheckpointError, match="has shape") as error:
        run(spec)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS.get(n).experts is not None])
def test_wrong_number_of_experts_is_refused(name):
    """Only methods that declare a fixed expert count (e.g. SLERP's two) have this check."""
    entry = METHODS.get(name)
    suite = _suite()
    pool = suite.pool()
    count = entry.experts + 1 if entry.experts + 1 <= len(pool.tasks) else entry.experts - 1
    if count < 1:
        pytest.skip("the tiny suite cannot build another expert count")
    context = MethodContext(
        suite, pool.subset(pool.tasks[:count]), torch.device("cpu"), progress=False
    )
    with pytest.raises(HarnessError, match=f"exactly {entry.experts}") as error:
        entry.obj(context, **_settings(entry))
    assert "\n" not in str(error.value)


def test_harness_list_shows_the_expert_count():
    from harness.cli import cli

    result = CliRunner().invoke(cli, ["list", "methods"])
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert "experts" in header
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:] if line}
    column = header.index("experts")
    for entry in METHODS.entries():
        assert rows[entry.name][column] == str(entry.experts or "any")


def test_extra_parameters_follow_the_convention():
    """Binary masks are 1 bit per entry; see harness.method.Solution."""
    from harness.method import mask_parameters

    assert mask_parameters(32) == 1 and mask_parameters(33) == 2 and mask_parameters(0) == 0
    if "tall_masks" in NAMES:
        _, _, extra, _ = _default_run("tall_masks")
        count = _suite().pool().num_parameters()
        assert extra == count + 3 * math.ceil(count / 32)
