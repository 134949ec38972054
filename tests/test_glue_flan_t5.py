"""glue-flan-t5 end to end through a mirror of tiny real-architecture Flan-T5 models (full
and peft LoRA experts), a real unigram T5 tokenizer and a tiny GLUE: the same code path
(`harness eval`) a hub user takes, plus the pieces a user cannot see (pool names, the
first-step model, generation scoring, the LoRA merge)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import CheckpointError
from harness.evaluation.generation import (
    PrefixedDecoder,
    exact_match,
    parse_number,
    spearman_percent,
    stepwise_greedy,
)
from harness.registry import SUITES
from harness.run.records import read_record, record_files, validation_errors
from harness.suite import SuiteContext
from tasks.text.glue import prompts
from tasks.text.glue.flan_t5 import CHECKPOINT_SETS, TASKS, label_tokens
from tasks.text.glue.published_flan_t5 import PUBLISHED_GLUE_FLAN_T5
from tests.flan_t5_mirror import LORA_ALPHA, LORA_RANK, build_mirror
from tests.harness_cli import invoke

ROWS = 24
SOME = "cola,stsb"


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    return build_mirror(tmp_path_factory.mktemp("flan") / "mirror", TASKS, lora=True, rows=ROWS)


def suite_for(mirror: Path, checkpoints: str = "full", only: list[str] | None = None):
    suite = SUITES.get("glue-flan-t5").obj(
        SuiteContext(mirror=mirror, progress=False, options={"checkpoints": checkpoints})
    )
    suite.select_tasks(only)
    suite.prepare()
    return suite


def harness(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``harness ARGS`` in-process: (exit code, stderr)."""
    code, _, err = invoke(monkeypatch, capsys, *args)
    return code, err


def eval_args(method: str, mirror: Path, results: Path, *extra: str) -> list[str]:
    return [
        "eval", "--method", method, "--tasks", "glue-flan-t5", *extra, "--mirror", str(mirror),
        "--results", str(results), "--device", "cpu", "--quiet",
    ]  # fmt: skip


# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("checkpoints, only", [("full", ",".join(TASKS)), ("lora16", "rte,stsb")])
def test_task_arithmetic_end_to_end(checkpoints, only, mirror, tmp_path, monkeypatch, capsys):
    """The whole suite with full experts; LoRA experts (merged first) on a classification
    and the regression task."""
    args = eval_args("task_arithmetic", mirror, tmp_path, "--set", "scaling=0.3")
    args += ["--suite-set", f"checkpoints={checkpoints}", "--only", only]
    code, err = harness(monkeypatch, capsys, *args)
    assert code == 0, err
    (path,) = record_files(tmp_path)
    record = read_record(path)
    assert validation_errors(record) == []
    assert record["suite"]["checkpoint_set"] == f"{checkpoints}:google/flan-t5-base"
    assert record["suite"]["metric"] == "score"
    assert list(record["tasks"]) == only.split(",")
    for task, entry in record["tasks"].items():
        assert entry["metrics"]["n"] == ROWS
        assert ("spearman" if task == "stsb" else "accuracy") in entry["metrics"]
        assert entry["metric"] == entry["metrics"]["score"]
    roles = {artifact["role"]: artifact["id"] for artifact in record["artifacts"]}
    suffix = "_lora-16" if checkpoints == "lora16" else ""
    assert roles["expert:stsb"] == f"tanganke/flan-t5-base_glue-stsb{suffix}"
    assert roles["base"] == "google/flan-t5-base" and roles["dataset"] == "nyu-mll/glue"


@pytest.mark.parametrize(
    "method, settings", [("adamerging", "steps=2"), ("fisher", "num_examples=6")]
)
def test_data_based_methods_end_to_end(method, settings, mirror, tmp_path, monkeypatch, capsys):
    args = eval_args(method, mirror, tmp_path, "--only", SOME, "--set", settings)
    code, err = harness(monkeypatch, capsys, *args, "--select", "defaults")
    assert code == 0, err
    (path,) = record_files(tmp_path)
    record = read_record(path)
    assert validation_errors(record) == [] and list(record["tasks"]) == SOME.split(",")


# --------------------------------------------------------------------------- model
@pytest.mark.parametrize("checkpoints", ["full", "lora16"])
def test_bench_generates_the_same_strings_as_transformers_padded_generate(
    checkpoints, mirror, monkeypatch, capsys
):
    """harness bench eval on a text-to-text suite: the suite's bucketed greedy path and
    FusionBench's recipe (transformers' generate, prompts padded to 512, batch 8, fp32)
    produce the same strings on the same examples, and the speed-up is reported."""
    code, out, err = invoke(
        monkeypatch, capsys, "bench", "eval", "--tasks", "glue-flan-t5", "--only", "rte,stsb",
        "--suite-set", f"checkpoints={checkpoints}", "--mirror", str(mirror),
        "--device", "cpu", "--limit", "6", "--json",
    )  # fmt: skip
    assert code == 0, err
    figures = json.loads(out)
    assert figures["examples"] == {"rte": 6, "stsb": 6}
    assert figures["agree"] == figures["total"] == 12
    assert figures["reference_tokens"] == 12 * 512 > figures["harness_tokens"]
    assert figures["ratio"] > 0


def test_pool_names_are_the_model_parameters_once(mirror):
    suite = suite_for(mirror, only=["cola", "rte"])
    pool = suite.pool()
    model = suite.build_model(pool.base_state())
    names = [name for name, _ in model.named_parameters()]
    assert sorted(names) == sorted(pool.names) == sorted(model.state_dict())
    assert "shared.weight" in names and "lm_head.weight" in names
    assert not any("embed_tokens" in name for name in pool.names)
    assert pool.num_parameters() == sum(p.numel() for p in model.parameters())
    assert not torch.equal(model.lm_head.weight, model.shared.weight)  # untied, as Flan-T5
    model.load_state_dict(pool.expert_state("rte"), strict=True)  # what Fisher/RegMean do


def test_first_step_logits_are_the_decoders_first_logits(mirror):
    from transformers import T5ForConditionalGeneration

    suite = suite_for(mirror, only=["rte"])
    model = suite.build_model(suite.pool().expert_state("rte"))
    reference = T5ForConditionalGeneration.from_pretrained(
        mirror / "models/tanganke/flan-t5-base_glue-rte"
    ).eval()
    inputs, labels = next(iter(suite.batches("rte", "train", batch_size=4)))
    assert inputs.dtype == torch.int64 and labels.dtype == torch.int64
    mask = (inputs != 0).long()
    start = torch.zeros((inputs.shape[0], 1), dtype=torch.long)
    with torch.no_grad():
        expected = reference(input_ids=inputs, attention_mask=mask, decoder_input_ids=start)
        got = model(inputs)
        padded = model(torch.cat([inputs, torch.zeros_like(inputs[:, :5])], dim=1))
    torch.testing.assert_close(got, expected.logits[:, 0])
    torch.testing.assert_close(padded, got)  # the mask comes from the pad id
    head = suite.head("rte")
    yes, no = label_tokens(suite._tokenizer, "rte")
    torch.testing.assert_close(head(got), got[:, [yes, no]])


def test_greedy_decoding_equals_transformers_generate(mirror):
    """The suite's decoder, the step-by-step one (for ensembles, routers) and FusionBench's
    call, ``generate(input_ids, max_length=10)``, give the same tokens."""
    suite = suite_for(mirror, only=["mnli"])
    model = suite.build_model(suite.pool().expert_state("mnli"))
    inputs, _ = next(iter(suite.batches("mnli", "test", batch_size=8)))
    ids = suite.special_ids
    ours = model.greedy(inputs, 10)
    stepwise = stepwise_greedy(nn.Sequential(model), inputs, **ids, max_length=10)
    with torch.no_grad():
        reference = model.generate(
            input_ids=inputs, attention_mask=(inputs != 0).long(), max_length=10,
            do_sample=False, num_beams=1,
        )  # fmt: skip
    assert ours.shape[1] <= 10 and torch.all(ours[:, 0] == ids["start_id"])
    width = max(t.shape[1] for t in (ours, stepwise, reference))
    padded = [nn.functional.pad(t, (0, width - t.shape[1])) for t in (ours, stepwise, reference)]
    assert torch.equal(padded[0], padded[1]) and torch.equal(padded[0], padded[2])
    assert ours.shape[1] > 2  # the comparison covered several decoding steps


def test_label_first_tokens_are_distinct_and_clashes_fail(mirror):
    suite = suite_for(mirror, only=["cola"])
    for task in TASKS:
        tokens = label_tokens(suite._tokenizer, task)
        assert len(set(tokens)) == len(tokens) == (6 if task == "stsb" else len(
            prompts.LABEL_WORDS[task]))  # fmt: skip

    class LastLetter:  # one token, the last letter: "negative" and "positive" clash
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(text[-1])]}

    with pytest.raises(
        CheckpointError, match="sst2: the targets .negative. and .positive."
    ) as error:
        label_tokens(LastLetter(), "sst2")
    assert "\n" not in str(error.value)


def test_stsb_classes_are_the_first_tokens_of_printed_scores(mirror):
    suite = suite_for(mirror, only=["stsb"])
    tokenizer = suite._tokenizer
    digits = label_tokens(tokenizer, "stsb")  # the tiny tokenizer, like Flan-T5's: "▁3" "." "8"
    assert tokenizer.convert_ids_to_tokens(list(digits)) == [f"▁{k}" for k in range(6)]
    tokens = suite.tokenized("stsb", "train")
    _, classes = zip(*suite.batches("stsb", "train", batch_size=1000))
    expected = sorted(int(float(prompts.score_text(s))) for s in tokens.labels)
    assert sorted(torch.cat(classes).tolist()) == expected

    class Pieces:  # a tokenizer with a "▁3.5" piece: a seventh class, not a wrong one
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [350 if text == "3.5" else ord(text[0])]}

    assert label_tokens(Pieces(), "stsb") == (*map(ord, "0123"), 350, *map(ord, "45"))


def test_peft_merge_is_w_plus_scaled_b_a(mirror, monkeypatch):
    from safetensors.torch import load_file

    from tasks.text.glue import lora

    suite_for(mirror, "lora16", only=["qnli"])  # merges and caches
    monkeypatch.setattr(lora, "merge_adapter", lambda *args: pytest.fail("merged twice"))
    suite = suite_for(mirror, "lora16", only=["qnli"])
    pool = suite.pool()
    name = "encoder.block.1.layer.0.SelfAttention.q.weight"
    adapter = load_file(
        mirror / "models/tanganke/flan-t5-base_glue-qnli_lora-16/adapter_model.safetensors"
    )
    prefix = "base_model.model." + name.removesuffix(".weight")
    a, b = adapter[f"{prefix}.lora_A.weight"], adapter[f"{prefix}.lora_B.weight"]
    assert a.shape[0] == LORA_RANK
    expected = pool.base_tensor(name) + (LORA_ALPHA / LORA_RANK) * (b @ a)
    torch.testing.assert_close(pool.expert_tensor("qnli", name), expected)
    untouched = "encoder.block.1.layer.0.SelfAttention.k.weight"
    assert torch.equal(pool.expert_tensor("qnli", untouched), pool.base_tensor(untouched))


# --------------------------------------------------------------------------- scoring
class Oracle(PrefixedDecoder, nn.Module):
    """Spells a fixed answer per prompt (keyed by its token ids), one token per step."""

    def __init__(self, answers: dict[tuple[int, ...], list[int]], vocab: int) -> None:
        super().__init__()
        self.answers, self.vocab = answers, vocab

    def special_ids(self) -> dict[str, int]:
        return {"start_id": 0, "eos_id": 1, "pad_id": 0}

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        step = 0 if self.decoder_prefix is None else self.decoder_prefix.shape[1] - 1
        logits = torch.zeros(input_ids.shape[0], self.vocab)
        for row, ids in enumerate(input_ids):
            answer = self.answers[tuple(ids[ids != 0].tolist())] + [1]
            logits[row, answer[min(step, len(answer) - 1)]] = 1.0
        return logits


def oracle(suite, task: str, answer) -> Oracle:
    tokens = suite.tokenized(task, "test")
    encode = suite._tokenizer
    answers = {
        tuple(int(i) for i in ids): encode(answer(label), add_special_tokens=False)["input_ids"]
        for ids, label in zip(tokens.ids, tokens.labels)
    }
    return Oracle(answers, int(suite._config.vocab_size))


def test_generation_scores_exact_match_on_known_outputs(mirror):
    suite = suite_for(mirror, only=["cola", "mnli"])
    labels = suite.tokenized("mnli", "test").labels
    right = oracle(suite, "mnli", lambda label: prompts.target("mnli", label))
    assert suite.evaluate(right, "mnli") == {"score": 100.0, "accuracy": 100.0, "n": ROWS}
    always = oracle(suite, "mnli", lambda label: "entailment")  # three tokens, one word
    expected = 100.0 * np.mean(labels == 0)
    assert 0 < expected < 100 and suite.evaluate(always, "mnli")["accuracy"] == expected
    cased = oracle(suite, "cola", lambda label: prompts.target("cola", label).capitalize())
    assert suite.evaluate(cased, "cola")["accuracy"] == 0.0  # exact, case-sensitive
    assert suite.evaluate(right, "mnli", limit=10)["n"] == 10


def test_generation_scores_stsb_by_spearman_of_the_printed_score(mirror):
    suite = suite_for(mirror, only=["stsb"])
    right = oracle(suite, "stsb", prompts.score_text)
    assert suite.evaluate(right, "stsb")["spearman"] == pytest.approx(100.0)
    reversed_ = oracle(suite, "stsb", lambda label: prompts.score_text(5.0 - label))
    assert suite.evaluate(reversed_, "stsb")["score"] == pytest.approx(-100.0)
    words = oracle(suite, "stsb", lambda label: "yes")  # unparsable → 0.0 → constant → 0
    assert suite.evaluate(words, "stsb")["spearman"] == 0.0


def test_metric_helpers():
    assert exact_match(["yes", "no", "yes "], ["yes", "yes", "yes"]) == pytest.approx(100 / 3)
    assert parse_number("3.8") == 3.8 and parse_number("3.8.") == 0.0
    assert parse_number("nan") == 0.0
    assert spearman_percent(["1.0", "2.0", "x"], [1.0, 2.0, 3.0]) == pytest.approx(-50.0)
    assert spearman_percent(["2.0", "2.0"], [1.0, 2.0]) == 0.0
    assert prompts.score_text(3.849) == "3.8" and prompts.printed_index(4.96) == 50
    assert prompts.PRINTED_SCORES[38] == "3.8" and len(prompts.PRINTED_SCORES) == 51


def test_templates_are_fusionbenchs_wording():
    assert prompts.TEMPLATES["cola"].startswith("Indicate if the following sentence is")
    assert prompts.TEMPLATES["qqp"].endswith("Answere with 'yes' or 'no'.")
    assert prompts.TEMPLATES["qnli"].endswith("Answer with 'yes' or 'no'.")
    filled = prompts.prompt("rte", ("sentence1", "sentence2"), ("A b.", "C d."))
    assert filled == "Does the text: 'A b.' entail that 'C d.' is true? Provide 'yes' or 'no'."
    assert prompts.LABEL_WORDS["qnli"] == ("yes", "no")  # GLUE's 0 is "entailment"


# --------------------------------------------------------------------------- errors
def _copy(mirror: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(mirror, tmp_path / "mirror"))


def _refused(monkeypatch, capsys, mirror, results, *extra) -> str:
    code, err = harness(monkeypatch, capsys, *eval_args("weight_average", mirror, results, *extra))
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert not results.exists() or not list(results.iterdir()), "nothing may be left behind"
    return err


def test_mirror_missing_a_tasks_files_is_one_line(mirror, tmp_path, monkeypatch, capsys):
    broken = _copy(mirror, tmp_path)
    for file in (broken / "datasets/nyu-mll/glue/rte").glob("validation-*"):
        file.unlink()
    err = _refused(monkeypatch, capsys, broken, tmp_path / "results")
    assert "rte/validation" in err and "hf download nyu-mll/glue" in err


def test_absent_tokenizer_is_one_line(mirror, tmp_path, monkeypatch, capsys):
    broken = _copy(mirror, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / "models/google/flan-t5-base" / name).unlink()
    err = _refused(monkeypatch, capsys, broken, tmp_path / "results", "--only", "cola")
    assert "no usable tokenizer" in err and "google/flan-t5-base" in err


def test_lora_adapter_of_another_base_is_one_line(mirror, tmp_path, monkeypatch, capsys):
    broken = _copy(mirror, tmp_path)
    config_file = broken / "models/tanganke/flan-t5-base_glue-sst2_lora-16/adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = "google/flan-t5-large"
    config_file.write_text(json.dumps(config))
    err = _refused(monkeypatch, capsys, broken, tmp_path / "results",
                   "--suite-set", "checkpoints=lora16")  # fmt: skip
    assert "flan-t5-base_glue-sst2_lora-16 was trained on 'google/flan-t5-large'" in err


# --------------------------------------------------------------------------- published
def test_published_rows_match_the_suite_and_their_averages():
    suite_cls = SUITES.get("glue-flan-t5").obj
    sets = {f"{option}:{spec.base}" for option, spec in CHECKPOINT_SETS.items()}
    assert {row.checkpoint_set for row in PUBLISHED_GLUE_FLAN_T5} == sets
    assert suite_cls.published is PUBLISHED_GLUE_FLAN_T5
    for row in PUBLISHED_GLUE_FLAN_T5:
        assert list(row.per_task) == TASKS and row.source.startswith("https://")
        mean = sum(row.per_task.values()) / len(row.per_task)
        # per-task values and averages are each rounded to 0.1; one printed rte does not fit
        if "as printed" not in row.note:
            assert abs(mean - row.average) <= 0.1, (row.checkpoint_set, row.method, mean)
