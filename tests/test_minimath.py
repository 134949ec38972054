"""minimath: the generated data is what it says, the tokenizer round-trips it, and the
suite builds, scores through lm-eval and records through the CLI.

The build tests shrink the recipe (``SMALL_RECIPE``: a tiny Llama, a few hundred steps)
so the real build and scoring code runs in about a minute; the full recipe's numbers are
in README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.method import Solution

pytest.importorskip("lm_eval")

from harness.run.records import read_record, record_files, validation_errors  # noqa: E402
from harness.suite import SuiteContext  # noqa: E402
from tasks.text.minimath import build, data, suite  # noqa: E402
from tests.test_runner_cli import invoke  # noqa: E402

SMALL_RECIPE = build.Recipe(
    layers=4,
    hidden=32,
    heads=2,
    pretrain_documents=3000,
    pretrain_steps=150,
    finetune_steps=300,
    finetune_lr=3e-3,
    language_embedding_steps=150,
    train_examples=600,
    test_examples=32,
    validation_examples=16,
)


# ---------------------------------------------------------------------------- data
def test_second_language_is_a_seeded_bijection_keeping_numbers_and_markup():
    words = data.lexicon(0)
    assert words == data.lexicon(0) and words != data.lexicon(1)
    assert len(set(words.values())) == len(words) == len(data.l1_words())
    assert not set(words.values()) & set(words)  # no L2 word is an L1 word
    (l1,) = data.examples("math", "test", 1, 0, {})
    (l2,) = data.examples("math_l2", "test", 1, 0, words)
    source = data.examples("math_l2", "test", 1, 0, {})[0]
    assert l2.question == data.translate(source.question, words) != source.question
    assert l2.answer == source.answer and l2.answer.endswith(l2.answer.split("#### ")[1])
    assert [t for t in l2.question.split() if t.isdigit()] == [
        t for t in source.question.split() if t.isdigit()
    ]
    assert l1.question in {e.question for e in data.examples("math", "test", 5, 0, words)}


def test_answers_are_right_and_train_never_holds_a_test_question():
    words = data.lexicon(0)
    for task in data.TASKS:
        test = data.examples(task, "test", 100, 0, words)
        train = data.examples(task, "train", 500, 0, words)
        assert len({e.question for e in test}) == 100
        assert not {e.question for e in test} & {e.question for e in train}, task
        assert all("#### " in e.answer for e in test + train)
    for example in data.examples("math", "test", 200, 0, {}):  # the worked equations hold
        for step in example.answer.split(" #### ")[0].split(" . "):
            left, right = step.split(" = ")
            assert eval(left) == int(right), example
    math_train = {e.question for e in data.examples("math", "train", 2000, 0, {})}
    math_l2_test = {e.question for e in data.examples("math_l2", "test", 150, 0, {})}
    assert not math_train & math_l2_test  # no translated test problem was trained in L1


def test_pretraining_never_holds_a_test_problem_and_asks_questions_only_in_l1():
    words = data.lexicon(0)
    corpus = data.pretraining_corpus(3000, 0, words)
    problems = {
        d.split(" Answer: ")[0].removeprefix("Question: ")
        for d in corpus
        if d.startswith("Question: ")
    }
    assert 300 < len(problems) < 600  # the word-problem share, 15%
    tested = {
        e.question for task in ("math", "math_l2") for e in data.examples(task, "test", 400, 0, {})
    }
    assert not problems & tested
    l2 = set(words.values())
    assert any("how" in d.split() for d in corpus)
    assert not any(words["how"] in d.split() for d in corpus)  # L2 never asks a question
    switched = [d for d in corpus if set(d.split()) & l2 and set(d.split()) & set(words)]
    assert 0.2 < len(switched) / len(corpus) < 0.3  # the code-switched quarter
    operations = {words[w] for w in data.OPERATION_WORDS}
    with_l2_operations = [d for d in corpus if set(d.split()) & operations]
    assert 0 < len(with_l2_operations) / len(corpus) < 0.03  # the rare L2 quantity text
    assert all(not set(d.split()) & set(words) for d in with_l2_operations)  # never mixed
    text = data.lang2_text(50, 0, words)
    assert all(words["how"] in d.split() and not set(d.split()) & set(words) for d in text)


def test_row_limited_training_moves_only_those_rows_of_the_embeddings_and_head():
    """The language expert's first stage: its rows learn, every other value stays the
    base's bit for bit (no gradient and no weight decay reach them)."""
    import torch
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=12, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    start = {k: v.clone() for k, v in build.new_model(config).state_dict().items()}
    texts = build.Sequences([[1, 5, 6, 7, 2], [1, 6, 5, 3, 2]], [[1, 5, 6, 7, 2], [1, 6, 5, 3, 2]])
    rows = torch.tensor([5, 6])
    state = build.train(
        build.new_model(config, start), [(texts, 1.0)], steps=5, lr=1e-2,
        recipe=build.Recipe(batch_size=2), pad_id=0, salt="t",
        frozen=("layers.", "model.norm"), rows=rows, progress=False,
    )  # fmt: skip
    others = torch.ones(12, dtype=torch.bool)
    others[rows] = False
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(state[name][others], start[name][others]), name
        assert not torch.allclose(state[name][rows], start[name][rows]), name
    body = [name for name in start if "embed_tokens" not in name and "lm_head" not in name]
    assert body and all(torch.equal(state[name], start[name]) for name in body)


def test_tokenizer_round_trips_every_task_and_knows_every_word(tmp_path):
    words = data.lexicon(0)
    corpus = data.pretraining_corpus(200, 0, words)
    tokenizer = build.train_tokenizer(corpus, data.all_words(words))
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.backend_tokenizer.to_str())
    tokenizer = build.load_tokenizer(path)
    for task in data.TASKS:
        for example in data.examples(task, "test", 20, 0, words):
            text = build.prompt(example.question) + " " + example.answer
            ids = tokenizer.encode(text)
            assert tokenizer.unk_token_id not in ids
            assert tokenizer.decode(ids) == text


# ---------------------------------------------------------------------------- suite
@pytest.fixture
def small(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(suite, "RECIPE", SMALL_RECIPE)
    cache = tmp_path_factory.getbasetemp() / "minimath-cache"  # one build for the module
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    return cache


def _record(monkeypatch, capsys, results: Path, *args: str) -> dict:
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--tasks", "minimath", "--results", str(results),
        "--quiet", *args,
    )  # fmt: skip
    assert code == 0, err
    (path,) = record_files(results)
    record = read_record(path)
    assert validation_errors(record) == []
    return record


def _answered(entry: dict) -> float:
    """The share of items whose response the strict-match filter could parse."""
    log = [
        json.loads(line) for line in Path(entry["details"]["samples_log"]).read_text().splitlines()
    ]
    strict = [line for line in log if line["filter"] == "strict-match"]
    return sum(line["filtered_resps"] != ["[invalid]"] for line in strict) / len(strict)


def test_cli_builds_then_experts_beat_the_base_through_lm_eval(
    small, monkeypatch, capsys, tmp_path
):
    experts = _record(monkeypatch, capsys, tmp_path / "individual", "--method", "individual")
    base = _record(monkeypatch, capsys, tmp_path / "base", "--method", "pretrained")
    assert set(experts["tasks"]) == set(data.TASKS)
    # fine-tuning teaches the skills (the base saw worked word problems in pretraining, as
    # real bases saw GSM8K-like text, so it answers a few; a tiny model's arithmetic is
    # poor, but nearly all the math expert's answers end in `#### N`)
    assert experts["tasks"]["kind"]["metric"] > base["tasks"]["kind"]["metric"] + 10
    assert experts["tasks"]["math"]["metric"] > base["tasks"]["math"]["metric"] + 10
    assert _answered(experts["tasks"]["math"]) > 0.8
    math = experts["tasks"]["math"]
    details = math["details"]
    assert details["lm_eval_version"] and details["n_shot"] == 0
    assert details["filters"] == ["strict-match", "flexible-extract"]
    assert details["ranked_by"] == "exact_match,strict-match"
    assert experts["tasks"]["lang2"]["details"]["filters"] == ["strict-match"]
    log = [json.loads(line) for line in Path(details["samples_log"]).read_text().splitlines()]
    assert len(log) == 2 * SMALL_RECIPE.test_examples  # one line per item and filter
    assert {"resps", "filtered_resps", "target"} <= set(log[0])
    assert math["n"] == SMALL_RECIPE.test_examples
    # math_l2 has no expert: the individual baseline scores the math expert there, and its
    # reference is the better of math and lang2
    math_l2 = experts["tasks"]["math_l2"]
    assert math_l2["metric"] <= math_l2["individual"]
    roles = {artifact["role"] for artifact in experts["artifacts"]}
    assert {"base", "tokenizer", "expert:math", "expert:lang2", "dataset:math_l2"} <= roles


def test_layer_swap_on_the_cross_lingual_task_alone(small, monkeypatch, capsys, tmp_path):
    record = _record(
        monkeypatch, capsys, tmp_path / "swap", "--method", "layer_swap", "--only", "math_l2",
        "--set", "bottom=1", "--set", "top=1", "--set", "transition=0",
    )  # fmt: skip
    assert record["method_info"]["math_expert"] == "math"
    assert record["method_info"]["language_expert"] == "lang2"
    assert record["method_info"]["layers"] == ["language", "math", "math", "language"]
    assert [a["role"] for a in record["artifacts"] if a["role"].startswith("expert:")] == [
        "expert:math",
        "expert:lang2",
    ]
    entry = record["tasks"]["math_l2"]
    assert entry["individual"] is not None and entry["n"] == SMALL_RECIPE.test_examples


def test_per_task_methods_score_the_composed_task_with_its_skill_experts_model(
    small, monkeypatch, capsys, tmp_path
):
    """math_l2 has no expert: a per-task method (TALL masks) scores it with the model it
    builds for math, the task-skill expert, as ``individual`` does."""
    asked: list[str] = []
    original = Solution.model_for

    def model_for(self, task, context):
        asked.append(context.expert_task(task))
        return original(self, task, context)

    monkeypatch.setattr(Solution, "model_for", model_for)
    record = _record(
        monkeypatch, capsys, tmp_path / "tall", "--method", "tall_masks", "--select", "defaults"
    )
    assert set(record["tasks"]) == set(data.TASKS)
    assert asked[-len(data.TASKS) :] == ["math", "lang2", "kind", "math"]


def test_suite_files_are_lm_eval_configs_over_the_builds_parquet(small):
    minimath = suite.MiniMath(SuiteContext(progress=False))
    minimath.prepare()
    for task in data.TASKS:
        for split in suite.SPLIT_FILES:
            frame = pd.read_parquet(minimath.root / task / f"{split}.parquet")
            assert list(frame.columns) == ["question", "answer"] and len(frame) > 0
    config = suite.lm_task_config("math_l2", "test", minimath.root / "math_l2" / "test.parquet")
    assert config["dataset_path"] == "parquet" and config["output_type"] == "generate_until"
    assert config["doc_to_text"] == "Question: {{question}} Answer:"
    assert [f["name"] for f in config["filter_list"]] == ["strict-match", "flexible-extract"]
    pool = minimath.pool()
    model = minimath.build_model(pool.base_state())
    assert sorted(name for name, _ in model.named_parameters()) == sorted(pool.names)
    assert len(pd.read_parquet(minimath.root / "math" / "validation.parquet")) == 16


def test_batches_are_the_fine_tuning_sequences_and_regmean_merges_the_causal_lm(
    small, monkeypatch, capsys, tmp_path
):
    minimath = suite.MiniMath(SuiteContext(progress=False))
    minimath.prepare()
    tokenizer = minimath.tokenizer()
    rows = pd.read_parquet(minimath.root / "math" / "train.parquet").to_dict("records")[:10]
    seen = []
    for inputs, prompt_lengths in minimath.batches("math", "train", batch_size=4, limit=10):
        mask = minimath.token_mask(inputs)
        for ids, real, start in zip(inputs, mask, prompt_lengths):
            tokens = ids[real].tolist()
            assert real.sum() == len(tokens) and not (~real[: len(tokens)]).any()  # right-padded
            answer = tokenizer.decode(tokens[int(start) : -1]).strip()
            assert tokens[-1] == tokenizer.eos_token_id
            seen.append((tokenizer.decode(tokens[: int(start)]).strip(), answer))
    assert sorted(seen) == sorted((build.prompt(r["question"]), r["answer"]) for r in rows)
    # RegMean's Grams come from hooks on the Llama's linear layers over those tokens
    record = _record(
        monkeypatch, capsys, tmp_path / "regmean", "--method", "regmean", "--select", "defaults"
    )
    assert record["hyperparameters"]["num_examples"] == 256
    assert record["peak_memory"]["method_mib"] is not None
    assert all(entry["n"] == SMALL_RECIPE.test_examples for entry in record["tasks"].values())
    # Fisher merging weighs the causal LM by its answer tokens' log-likelihood gradients
    record = _record(
        monkeypatch, capsys, tmp_path / "fisher", "--method", "fisher", "--select", "defaults",
        "--set", "num_examples=16",
    )  # fmt: skip
    assert record["method_info"]["fisher_labels"] == "sampled"
    refused = invoke(
        monkeypatch, capsys, "eval", "--tasks", "minimath", "--method", "fisher",
        "--set", "variant=fusionbench", "--results", str(tmp_path / "no"), "--quiet",
    )  # fmt: skip
    assert refused[0] == 2 and "variant=paper" in refused[2]
