"""The distillation family's contract, parametrised over every registered distillation
method (as scikit-learn's ``check_estimator``): a new method is checked for free.

Each method, on the tiny three-task suite, must:
* give the same student for the same seed (and a different one for another seed);
* return its initialisation with zero steps (the base, or the registered merge it names);
* never read test labels (nor test inputs): it learns from the train split only;
* approach the expert when trained from that one expert alone;
* record its compute (steps, examples seen by student and teachers, seconds), paying for
  each teacher once per distinct train batch however many epochs the budget runs.

A method that needs a causal LM (``needs`` "lm": FuseLLM) runs every check on the tiny
Llama suite (tests/tiny_lm_suite.py) instead of the tiny vision suite, with "approaches
the expert" measured on next-token distributions of validation answers.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.method import MethodContext
from harness.registry import METHODS, SUITES, Entry
from harness.suite import SuiteContext
from tests.tiny_lm_suite import TinyLmSuite, answer_log_probs
from tests.tiny_suite import TinySuite

# Every method that trains a student (a budget of ``steps``); inference-time references
# of the family (dynamic_logit_fusion: nothing trained, no budget) have their own checks
# in tests/test_distillation_logit_fusion.py.
NAMES = [
    name
    for name in METHODS.names()
    if METHODS.get(name).family == "distillation" and "steps" in METHODS.get(name).params
]
FAST = {"steps": 3, "batch_size": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


READS: list[tuple[str, str]] = []


def _no_test_split(cls: type):
    """``cls`` refusing any read of the test split and logging every read in READS."""

    class NoTestSplit(cls):
        def batches(self, task, split, *, batch_size=32, limit=None):
            if split == "test":
                raise AssertionError(f"test split of {task} read during distillation")
            READS.append((task, split))
            return super().batches(task, split, batch_size=batch_size, limit=limit)

    return NoTestSplit


def _language_model(name: str) -> bool:
    return "lm" in METHODS.get(name).needs


def _suite(name: str, no_test: bool = False):
    """The tiny suite that meets the method's needs (vision heads, or a causal LM)."""
    cls = TinyLmSuite if _language_model(name) else TinySuite
    cls = _no_test_split(cls) if no_test else cls
    cls.name = "tiny3"
    suite = cls(SuiteContext(progress=False))
    suite.prepare()
    return suite


def _run(name: str, suite=None, pool=None, seed: int = 0, **overrides):
    suite = suite or _suite(name)
    context = MethodContext(
        suite, pool or suite.pool(), torch.device("cpu"), seed=seed, progress=False
    )
    entry = METHODS.get(name)
    return entry.obj(context, **entry.resolve_params({**FAST, **overrides})), context


def test_the_family_has_its_methods():
    assert {"multi_teacher_kd", "average_logit_kd", "feature_distillation", "fusellm"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_student(name):
    first, _ = _run(name)
    again, _ = _run(name)
    other, _ = _run(name, seed=1, steps=12)  # another batch order
    more, _ = _run(name, steps=12)
    for key, tensor in first.state.items():
        assert torch.equal(tensor, again.state[key]), f"{name}: {key} differs under one seed"
    assert any(not torch.equal(t, other.state[k]) for k, t in more.state.items())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("init", ["pretrained", "task_arithmetic", "ties"])
def test_zero_steps_return_the_initialisation(name, init):
    suite = _suite(name)
    solution, context = _run(name, suite, steps=0, init=init, init_scaling=0.4)
    if init == "pretrained":
        expected = context.pool.base_state()
    else:
        entry = METHODS.get(init)
        expected = entry.obj(context, **entry.resolve_params({"scaling": 0.4})).state
    assert set(solution.state) == set(expected)
    for key, tensor in solution.state.items():
        assert torch.equal(tensor, expected[key]), f"{name}/{init}: {key} is not the init"
    assert solution.info["distillation"]["examples_seen"] == 0
    assert solution.info["init"]["method"] == init


@pytest.mark.parametrize("name", NAMES)
def test_test_labels_are_never_read(name):
    READS.clear()
    suite = _suite(name, no_test=True)
    labels = {"label_weight": 0.5} if "label_weight" in METHODS.get(name).params else {}
    solution, _ = _run(name, suite, **labels)  # the label term reads train labels
    assert solution.info["distillation"]["examples_seen"] > 0
    assert {split for _, split in READS} == {"train"}


def _disagreement(context: MethodContext, state, task: str) -> float:
    """KL(expert ‖ model) of the task head's predictions on validation inputs (of the
    next-token distributions at the answer positions, for a causal LM)."""
    model = context.build_model(state)
    expert = context.build_model(context.pool.expert_state(task))
    if isinstance(context.suite, TinyLmSuite):
        pad, kls = context.suite.pad, []
        with torch.no_grad():
            for inputs, prompts in context.suite.batches(task, "validation"):
                target, _ = answer_log_probs(expert, inputs, prompts, pad)
                guess, _ = answer_log_probs(model, inputs, prompts, pad)
                kls.append((target.exp() * (target - guess)).sum(dim=-1))
        return float(torch.cat(kls).mean())
    head = context.head(task)
    inputs = torch.cat([x for x, _ in context.suite.batches(task, "validation")])
    with torch.no_grad():
        target = F.log_softmax(head(expert(inputs)), dim=-1)
        guess = F.log_softmax(head(model(inputs)), dim=-1)
    return float((target.exp() * (target - guess)).sum(dim=-1).mean())


#: a method's own pure-distillation setting where it mixes in gold targets by default
#: (FuseLLM: λ = 0 leaves the KD term alone; k = the whole vocabulary keeps it exact)
PURE_DISTILLATION = {"lm_weight": 0.0, "top_k": 10_000}


@pytest.mark.parametrize("name", NAMES)
def test_a_student_of_one_expert_approaches_it(name):
    suite = _suite(name)
    pool = suite.pool().subset([suite.tasks[0]])
    params = METHODS.get(name).params
    pure = {key: value for key, value in PURE_DISTILLATION.items() if key in params}
    solution, context = _run(name, suite, pool, steps=80, lr=3e-3, warmup=0.0, **pure)
    before = _disagreement(context, context.pool.base_state(), suite.tasks[0])
    after = _disagreement(context, solution.state, suite.tasks[0])
    assert after < 0.05 * before, f"{name}: KL to the expert {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", NAMES)
def test_compute_is_recorded_and_teachers_run_once_per_batch(name):
    solution, context = _run(name, steps=20)  # 96 train inputs, 16 a batch: over 3 epochs
    costs = solution.info["distillation"]
    train = 96  # tests/tiny_suite.py SIZES["train"]
    tasks = len(context.tasks)
    assert costs["steps"] == 20
    assert costs["examples_seen"] == 20 * 16 * tasks
    assert costs["distinct_examples"] == train * tasks
    teachers = {task: len(t) for task, t in solution.info["teachers"].items()}
    assert costs["teacher_forward_examples"] == train * sum(teachers.values())
    assert costs["train_s"] > 0 and costs["cpu_s"] > 0 and costs["gpu_s"] is None
    assert solution.extra_parameters == 0 and solution.info["inference_models"] == 1


@pytest.mark.parametrize("name", NAMES)
def test_examples_cap_the_train_data(name):
    solution, _ = _run(name, steps=5, examples=32)
    assert solution.info["distillation"]["distinct_examples"] == 32 * 3


def test_the_record_carries_the_budget_and_compute(tmp_path, monkeypatch):
    from harness.run.runner import RunSpec, run

    SUITES.discover()
    entry = Entry(name="tiny3", kind="suite", obj=TinySuite, family="suite")
    monkeypatch.setitem(SUITES._entries, "tiny3", entry)
    spec = RunSpec(
        method="multi_teacher_kd",
        suite="tiny3",
        overrides={"steps": 4, "batch_size": 16},
        device="cpu",
        results_dir=tmp_path,
        progress=False,
    )
    record, _ = run(spec)
    assert record["method"]["family"] == "distillation"
    assert record["hyperparameters"]["steps"] == 4
    assert record["method_info"]["distillation"]["examples_seen"] == 4 * 16 * 3
    assert record["method_info"]["budget"] == {"steps": 4, "batch_size": 16, "examples": 0}
    assert record["extra_parameters"] == 0
    assert "--set steps=4" in record["command"]


def test_a_causal_lm_student_is_recorded_through_the_runner(tmp_path, monkeypatch):
    """The LM case end to end: fusellm on the tiny Llama suite, scored like a merge."""
    from harness.run.runner import RunSpec, run

    SUITES.discover()
    entry = Entry(name="tinylm", kind="suite", obj=TinyLmSuite, family="suite")
    monkeypatch.setitem(SUITES._entries, "tinylm", entry)
    monkeypatch.setattr(TinyLmSuite, "name", "tinylm", raising=False)
    spec = RunSpec(
        method="fusellm",
        suite="tinylm",
        overrides={"steps": 4, "batch_size": 16},
        device="cpu",
        results_dir=tmp_path,
        progress=False,
    )
    record, _ = run(spec)
    assert record["method"]["family"] == "distillation"
    assert record["hyperparameters"]["fusion"] == "sequence"
    assert record["hyperparameters"]["lm_weight"] == 0.9
    assert record["method_info"]["target"] == "tokens"
    assert record["method_info"]["distillation"]["examples_seen"] == 4 * 16 * 3
    assert set(record["tasks"]) == set(TinyLmSuite.tasks)
    shares = record["method_info"]["fused_teacher_share"]
    assert set(shares) == set(TinyLmSuite.tasks)
    assert all(abs(sum(share.values()) - 1.0) < 1e-3 for share in shares.values())
