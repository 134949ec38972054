"""glue-gpt2 end to end through a mirror of tiny real-architecture GPT-2 models, a real
byte-level BPE tokenizer and a tiny GLUE in the hub's layout: the code a hub user runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.merging.statistics import (
    GramCollector,
    RegressionSums,
    input_major,
    linear_layers,
    regression_merge,
    transformer_blocks,
)
from harness.registry import SUITES
from harness.run.records import read_record, record_files
from harness.suite import SuiteContext
from tests.gpt2_mirror import TASKS, build_gpt2_mirror, tiny_config
from tests.harness_cli import invoke


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    return build_gpt2_mirror(tmp_path_factory.mktemp("gpt2") / "mirror")


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return invoke(monkeypatch, capsys, *args)


def eval_args(method: str, mirror: Path, results: Path, *extra: str) -> list[str]:
    return [
        "eval", "--method", method, "--tasks", "glue-gpt2", *extra,
        "--mirror", str(mirror), "--results", str(results), "--device", "cpu", "--quiet",
    ]  # fmt: skip


def prepared(mirror: Path, **options):
    context = SuiteContext(mirror=mirror, progress=False, options=options)
    suite = SUITES.get("glue-gpt2").obj(context)
    suite.prepare()
    return suite


# ------------------------------------------------------------------------------ runs
def test_task_arithmetic_from_a_mirror_chooses_on_held_out_train(
    mirror, tmp_path, monkeypatch, capsys
):
    code, out, err = cli(monkeypatch, capsys, *eval_args("task_arithmetic", mirror, tmp_path))
    assert code == 0, err
    record = read_record(next(record_files(tmp_path)))
    assert list(record["tasks"]) == TASKS
    assert all(entry["n"] == 24 for entry in record["tasks"].values())
    assert record["suite"]["checkpoint_set"] == "transformers:gpt2"
    assert record["selection"]["strategy"] == "grid"
    assert record["selection"]["split"] == "validation"
    splits = record["suite"]["splits"]
    assert "train split" in splits["validation"] and "held out" in splits["validation"]
    assert "validation_matched" in splits["test"]
    roles = {artifact["role"]: artifact for artifact in record["artifacts"]}
    assert roles["base"]["id"] == "gpt2" and roles["base"]["source"] == "mirror"
    assert roles["expert:rte"]["id"] == "tanganke/gpt2_rte"
    assert "average" in out


@pytest.mark.parametrize(
    ("method", "settings", "info"),
    [
        ("regmean", ["--set", "num_examples=8"], {"regression_layers": 8}),  # 4 Conv1D × 2
        ("fisher", ["--set", "num_examples=4"], {}),
    ],
)
def test_data_based_methods_run_on_gpt2(
    mirror, tmp_path, monkeypatch, capsys, method, settings, info
):
    args = eval_args(method, mirror, tmp_path, "--select", "defaults", "--only", "cola,mnli")
    code, _, err = cli(monkeypatch, capsys, *args, *settings)
    assert code == 0, err
    record = read_record(next(record_files(tmp_path)))
    assert set(record["tasks"]) == {"cola", "mnli"}
    for key, value in info.items():
        assert record["method_info"][key] == value


# ------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("task", ["cola", "mnli"])
def test_scoring_is_transformers_own_sequence_classifier(mirror, task):
    """The suite's backbone + head on right-padded batches gives exactly the logits of
    GPT2ForSequenceClassification (its last-non-pad pooling) on the same batch, and of
    each example run alone without padding."""
    from transformers import GPT2ForSequenceClassification

    suite = prepared(mirror)
    model = suite.build_model(suite.pool().expert_state(task))
    head = suite.head(task)
    reference = GPT2ForSequenceClassification.from_pretrained(
        mirror / "models" / "tanganke" / f"gpt2_{task}"
    ).eval()
    assert reference.config.pad_token_id == suite.pad_id
    inputs, _ = next(iter(suite.batches(task, "test", batch_size=24)))
    assert (inputs == suite.pad_id).any()  # padded rows are part of the check
    with torch.no_grad():
        ours = head(model(inputs))
        theirs = reference(input_ids=inputs, attention_mask=(inputs != suite.pad_id)).logits
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
        for row, ids in enumerate(inputs[:4]):
            alone = reference(input_ids=ids[ids != suite.pad_id][None]).logits
            torch.testing.assert_close(ours[row : row + 1], alone, atol=1e-5, rtol=1e-5)


def test_tokens_follow_fusionbench_pairs_and_the_carve(mirror):
    suite = prepared(mirror)
    tokenizer = suite._tokenizer
    assert tokenizer.model_max_length == 512 and tokenizer.pad_token == "<|endoftext|>"
    from tasks.text.glue import data as glue

    texts, _ = glue.load_rows(mirror / "datasets" / glue.DATASET, glue.TASKS["rte"], "test")
    first, second = texts[0]
    expected = tokenizer(first)["input_ids"] + tokenizer(second)["input_ids"]
    assert suite.tokens("rte", "test").ids[0].tolist() == expected  # pairs concatenated
    train, validation = suite.tokens("rte", "train"), suite.tokens("rte", "validation")
    assert len(train) + len(validation) == 24 and len(validation) == 2


def test_bucketed_and_padded_pipelines_predict_the_same(mirror, monkeypatch, capsys):
    from harness.bench.text_eval import bench_text_eval

    result = bench_text_eval("glue-gpt2", device="cpu", mirror=mirror, limit=8)
    assert result.examples == {task: 8 for task in TASKS}
    assert result.agree == result.total == 56
    assert result.harness_correct == result.reference_correct
    assert result.harness_tokens < result.reference_tokens == 56 * 512
    assert result.ratio > 0
    code, out, err = cli(
        monkeypatch, capsys, "bench", "eval", "--tasks", "glue-gpt2", "--only", "rte",
        "--mirror", str(mirror), "--device", "cpu", "--limit", "5",
    )  # fmt: skip
    assert code == 0, err
    assert "predictions agree on 5/5 (100.00%)" in out and "speed-up:" in out


# ------------------------------------------------------------------------------ Conv1D
def test_regmean_merges_gpt2_conv1d_as_a_transposed_linear_layer():
    """Conv1D stores W as [in, out] (y = x W + b): its Gram matrix is over its inputs and
    the merge is RegMean's closed form for Wᵀ, handed back in the stored layout."""
    from transformers import GPT2Model

    model = GPT2Model(tiny_config(400, 0)).eval()
    layers = linear_layers(model)
    assert set(layers) == {
        f"h.{i}.{name}.weight"
        for i in range(2)
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }
    assert all(input_major(module) for module in layers.values())
    assert transformer_blocks(model)[0] == "h"
    conv = layers["h.0.mlp.c_fc.weight"]
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(2, 7, 32, generator=generator) for _ in range(3)]
    weights = [torch.randn(32, 64, generator=generator) for _ in range(3)]  # [in, out]
    sums = RegressionSums(alpha=1.0)
    grams = []
    for x, weight in zip(inputs, weights):
        with GramCollector({"w": conv}) as collector, torch.no_grad():
            conv(x)
        flat = x.reshape(-1, 32)
        torch.testing.assert_close(collector.grams["w"], flat.T @ flat)
        grams.append(collector.grams["w"])
        sums.add("w", collector.grams["w"], weight, input_major=True)
    merged = sums.solve("w")
    assert merged.shape == (32, 64)
    # the nn.Linear closed form on the [out, in] weights, transposed back
    torch.testing.assert_close(merged, regression_merge(grams, [w.T for w in weights]).T)
    # and the least-squares solution of Σ_t ‖X_t W − X_t W_t‖² itself
    stacked = torch.cat([x.reshape(-1, 32) for x in inputs])
    targets = torch.cat([x.reshape(-1, 32) @ w for x, w in zip(inputs, weights)])
    solution = torch.linalg.lstsq(stacked.double(), targets.double()).solution.float()
    torch.testing.assert_close(merged, solution, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------ errors
def _copy(mirror: Path, target: Path, *ignored: str) -> Path:
    shutil.copytree(mirror, target, ignore=shutil.ignore_patterns(*ignored))
    return target


def _fails_in_one_line(monkeypatch, capsys, mirror: Path, results: Path, *extra: str) -> str:
    code, _, err = cli(monkeypatch, capsys, *eval_args("weight_average", mirror, results, *extra))
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not list(record_files(results))  # nothing written
    return lines[0]


def test_a_task_missing_from_the_mirror_is_named(mirror, tmp_path, monkeypatch, capsys):
    partial = _copy(mirror, tmp_path / "no-rte", "rte")  # GLUE's rte config
    line = _fails_in_one_line(monkeypatch, capsys, partial, tmp_path / "r1")
    assert "nyu-mll/glue" in line and "rte/validation" in line and "rte/train" in line
    partial = _copy(mirror, tmp_path / "no-expert", "gpt2_sst2")
    line = _fails_in_one_line(monkeypatch, capsys, partial, tmp_path / "r2")
    assert "lacks 1 of the 9 artifacts that glue-gpt2 needs" in line
    assert "models tanganke/gpt2_sst2" in line


def test_an_expert_head_with_the_wrong_labels_is_refused(mirror, tmp_path, monkeypatch, capsys):
    from transformers import GPT2ForSequenceClassification

    wrong = _copy(mirror, tmp_path / "wrong", "gpt2_mnli")
    config = tiny_config(400, prepared(mirror).pad_id, num_labels=2)
    GPT2ForSequenceClassification(config).save_pretrained(
        wrong / "models" / "tanganke" / "gpt2_mnli"
    )
    line = _fails_in_one_line(monkeypatch, capsys, wrong, tmp_path / "r", "--only", "mnli")
    assert "tanganke/gpt2_mnli's score head has 2 labels but GLUE mnli has 3" in line


def test_an_absent_tokenizer_is_named(mirror, tmp_path, monkeypatch, capsys):
    bare = _copy(mirror, tmp_path / "bare", "tokenizer*.json", "vocab.json", "merges.txt")
    assert (bare / "models" / "gpt2" / "config.json").is_file()
    line = _fails_in_one_line(monkeypatch, capsys, bare, tmp_path / "r", "--only", "cola")
    assert "gpt2" in line and "has no tokenizer" in line and "hf download gpt2" in line


def test_bin_only_experts_are_converted_once(mirror, tmp_path):
    """A snapshot with only pytorch_model.bin is read with weights_only=True and kept as
    safetensors in the cache; the pool and heads then see the same tensors."""
    from safetensors.torch import load_file

    converted = _copy(mirror, tmp_path / "bin")
    expert = converted / "models" / "tanganke" / "gpt2_cola"
    tensors = load_file(str(expert / "model.safetensors"))
    torch.save(tensors, expert / "pytorch_model.bin")
    (expert / "model.safetensors").unlink()
    suite = prepared(converted, dtype="fp32")
    suite.select_tasks(["cola"])
    original = prepared(mirror)
    state = suite.pool().expert_state("cola")
    for name, value in original.pool().expert_state("cola").items():
        assert torch.equal(state[name], value)
    assert torch.equal(suite.head("cola").weight, original.head("cola").weight)


def test_published_numbers_are_attached():
    published = SUITES.get("glue-gpt2").obj.published
    by_method = {entry.method: entry for entry in published}
    assert set(by_method) >= {"individual", "task_arithmetic", "ties", "regmean", "fisher"}
    for entry in published:
        assert list(entry.per_task) == TASKS and entry.table and entry.source.startswith("https")
        assert entry.checkpoint_set == "transformers:gpt2"
        assert np.mean(list(entry.per_task.values())) == pytest.approx(entry.average, abs=0.06)


def test_twin_routes_gpt2_conv1d_layers_exactly(mirror):
    """Twin factors a Conv1D's exclusive part in the [out, in] layout and adds it in its
    forward hook: at full rank, routing all weight to one expert gives that expert's
    Conv1D weights, and the routed forward pass equals the dense model."""
    from harness.method import MethodContext
    from harness.registry import METHODS

    suite = prepared(mirror)
    suite.select_tasks(["cola", "mnli", "rte"])
    context = MethodContext(suite, suite.pool(), torch.device("cpu"), progress=False)
    entry = METHODS.get("twin")
    torch.manual_seed(0)
    solution = entry.obj(context, **entry.resolve_params({"rank": 64, "steps": 2}))
    model = solution.model_for("cola", context)
    assert set(linear_layers(model.shared)) <= set(model.factors)  # every Conv1D is routed
    inputs, _ = next(iter(suite.batches("mnli", "test", batch_size=6)))
    with torch.no_grad():
        for index, task in enumerate(context.tasks):
            expert = context.pool.expert_state(task)
            dense = model.dense_state(index)
            for name in model.factors:
                torch.testing.assert_close(dense[name], expert[name], atol=1e-5, rtol=1e-4)
            model.fixed = torch.nn.functional.one_hot(torch.tensor([index]), 3).float()
            routed = model(inputs)
            model.fixed = None
            # dense_state: the expert in every routed tensor, θ_s in the embeddings
            torch.testing.assert_close(
                routed, suite.build_model(dense)(inputs), atol=1e-4, rtol=1e-4
            )
