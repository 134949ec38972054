"""llm-math and llm-crosslingual end to end through a mirror of tiny real-architecture
Llamas (saved with ``save_pretrained``, a real byte-level BPE tokenizer) and GSM8K, MGSM,
XNLI and Belebele in their hub layouts: the code a hub user runs, scored by lm-eval."""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")

from harness.errors import HarnessError  # noqa: E402
from harness.evaluation import lm_vllm  # noqa: E402
from harness.evaluation.lm_harness import LmEvalError, LmTask  # noqa: E402
from harness.registry import SUITES  # noqa: E402
from harness.run.records import read_record, record_files  # noqa: E402
from harness.suite import SuiteContext  # noqa: E402
from tasks.llm import benchmarks as bench  # noqa: E402
from tests.harness_cli import invoke  # noqa: E402
from tests.llama_mirror import (  # noqa: E402
    build_llm_mirror,
    perturbed,
    save_model,
    tiny_llama,
    tiny_tokenizer,
)

BASE = "meta-llama/Llama-3.2-3B"
MATH = "MergeBench/Llama-3.2-3B_math"
LANGUAGE = "MergeBench/Llama-3.2-3B_multilingual"
FAST = ["--suite-set", "limit=2", "--suite-set", "max_gen_toks=6"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    root = build_llm_mirror(tmp_path_factory.mktemp("llm") / "mirror")
    tokenizer = tiny_tokenizer()
    # another base: a vocabulary of another size
    other = tiny_tokenizer(vocab_size=300)
    save_model(tiny_llama(other, seed=5), other, root / "models" / "other/vocab-300")
    # the base's shapes, but another tokenizer's files (same vocabulary size, other tokens)
    texts = [f"Le chat numéro {i} mange {i * 7} croquettes." for i in range(60)]
    foreign = tiny_tokenizer(texts=texts, vocab_size=len(tokenizer))
    save_model(tiny_llama(tokenizer, seed=6), foreign, root / "models" / "other/foreign-tokens")
    # a fine-tune that appended a padding token (as MergeLM's WizardMath has [PAD])
    from transformers import AutoModelForCausalLM

    padded = tiny_tokenizer()
    padded.add_special_tokens({"pad_token": "[PAD]"})
    expert = perturbed(AutoModelForCausalLM.from_pretrained(root / "models" / BASE), seed=7)
    expert.resize_token_embeddings(len(padded))
    save_model(expert, padded, root / "models" / "other/padded")
    return root


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return invoke(monkeypatch, capsys, *args)


def eval_args(method: str, suite: str, mirror: Path, results: Path, *extra: str) -> list[str]:
    return [
        "eval", "--method", method, "--tasks", suite, *extra,
        "--mirror", str(mirror), "--results", str(results), "--device", "cpu", "--quiet",
    ]  # fmt: skip


def custom(experts: str, *extra: str) -> list[str]:
    return [
        "--checkpoints", "custom", "--suite-set", f"base={BASE}",
        "--suite-set", f"experts={experts}", *extra,
    ]  # fmt: skip


def prepared(name: str, mirror: Path, **options):
    suite = SUITES.get(name).obj(SuiteContext(mirror=mirror, progress=False, options=options))
    suite.prepare()
    return suite


# ------------------------------------------------------------------------------ runs
def test_llm_math_from_a_mirror_records_lm_eval_protocol(mirror, tmp_path, monkeypatch, capsys):
    args = eval_args("task_arithmetic", "llm-math", mirror, tmp_path, "--set", "scaling=0.3")
    code, out, err = cli(monkeypatch, capsys, *args, *FAST)
    assert code == 0, err
    record = read_record(next(record_files(tmp_path)))
    assert record["suite"]["checkpoint_set"] == f"mergebench-llama3.2-3b:{BASE}"
    assert record["suite"]["metric"] == "score" and list(record["tasks"]) == ["math"]
    math = record["tasks"]["math"]
    assert math["n"] == 2
    details = math["details"]
    import lm_eval

    assert details["lm_eval_version"] == lm_eval.__version__ and details["backend"] == "hf"
    assert len(details["merged_experts"]) == 5  # the whole set is merged, math is scored
    cot = details["benchmarks"]["gsm8k_cot"]  # MergeBench's math protocol
    assert cot["task_version"] == 3.0 and cot["n_shot"] == 8
    assert cot["filters"] == ["strict-match", "flexible-extract"]
    assert cot["validation"] == "train"  # carved from GSM8K's train split, not test
    assert cot["overrides"]["generation_kwargs"]["max_gen_toks"] == 6
    # the no-answer share is read from the per-sample log
    lines = [json.loads(line) for line in Path(cot["samples_log"]).read_text().splitlines()]
    assert len(lines) == 4  # 2 documents x 2 filters
    for name in cot["filters"]:
        misses = [
            line["filtered_resps"][0] == "[invalid]" for line in lines if line["filter"] == name
        ]
        expected = 100.0 * sum(misses) / len(misses)
        assert math["metrics"][f"gsm8k_cot/no_answer,{name}"] == pytest.approx(expected)
    assert math["metric"] == math["metrics"]["gsm8k_cot/exact_match,strict-match"]
    roles = {artifact["role"]: artifact for artifact in record["artifacts"]}
    assert roles["base"]["id"] == BASE and roles["base"]["source"] == "mirror"
    assert roles["expert:coding"]["id"] == "MergeBench/Llama-3.2-3B_coding"
    assert roles["dataset:openai/gsm8k"]["sha256"]
    assert "training split" in record["suite"]["splits"]["validation"]
    assert "average" in out


def test_validation_is_carved_out_of_train_or_the_scored_split(mirror):
    suite = prepared("llm-math", mirror, math_task="gsm8k")
    data = suite._data["openai/gsm8k"]
    gsm8k = suite.benchmarks["math"][0]
    import pandas as pd

    test = bench.data_files(gsm8k, data, "test")
    assert test == {
        "test": str(bench.split_files(data.path, "main", "test")[0]),
        "train": str(bench.split_files(data.path, "main", "train")[0]),
    }
    validation = {
        k: pd.read_parquet(v) for k, v in bench.data_files(gsm8k, data, "validation").items()
    }
    assert (len(validation["test"]), len(validation["train"])) == (14, 126)  # 10% / 90% of 140
    original = pd.read_parquet(test["train"])["question"]
    parts = [*validation["test"]["question"], *validation["train"]["question"]]
    assert Counter(parts) == Counter(original)  # a partition of GSM8K's train split
    # MGSM has only 8 training exemplars: its validation is 10% of test, scored on the rest
    mgsm = bench.Benchmark("mgsm_native_cot_sw", "exact_match,flexible-extract")
    mgsm_data = prepared(
        "llm-crosslingual", mirror, **{"checkpoints": "custom", "base": BASE,
                                       "experts": f"math={MATH},sw={LANGUAGE}"},
    )._data["juletxara/mgsm"]  # fmt: skip
    scored = pd.read_parquet(bench.data_files(mgsm, mgsm_data, "test")["test"])
    held_out = pd.read_parquet(bench.data_files(mgsm, mgsm_data, "validation")["test"])
    assert (len(scored), len(held_out)) == (18, 2)
    assert not set(scored["question"]) & set(held_out["question"])


def test_crosslingual_scores_mgsm_xnli_belebele_per_language(mirror, tmp_path, monkeypatch, capsys):
    args = eval_args(
        "task_arithmetic", "llm-crosslingual", mirror, tmp_path, "--set", "scaling=0.5"
    )
    extra = custom(f"math={MATH},sw={LANGUAGE}", "--suite-set", "benchmarks=mgsm,xnli,belebele")
    code, _, err = cli(monkeypatch, capsys, *args, *extra, *FAST)
    assert code == 0, err
    record = read_record(next(record_files(tmp_path)))
    assert list(record["tasks"]) == ["math", "sw"]
    assert record["suite"]["checkpoint_set"] == f"custom:{BASE}:math={MATH},sw={LANGUAGE}"
    sw = record["tasks"]["sw"]
    scored = sorted(sw["details"]["benchmarks"])
    assert scored == ["belebele_swh_Latn", "mgsm_native_cot_sw", "xnli_sw"]
    assert sorted(record["tasks"]["math"]["details"]["benchmarks"]) == [
        "belebele_eng_Latn", "mgsm_native_cot_en", "xnli_en",
    ]  # fmt: skip
    assert sw["n"] == 6  # 2 documents from each of 3 tasks
    ranked = [
        sw["metrics"]["mgsm_native_cot_sw/exact_match,flexible-extract"],
        sw["metrics"]["xnli_sw/acc,none"],
        sw["metrics"]["belebele_swh_Latn/acc,none"],
    ]
    assert sw["metric"] == pytest.approx(sum(ranked) / 3)
    xnli = sw["details"]["benchmarks"]["xnli_sw"]
    files = xnli["dataset"]["data_files"]
    assert files["validation"].endswith("sw/validation-00000-of-00001.parquet")  # scored split
    assert xnli["validation"] == "train"
    belebele = sw["details"]["benchmarks"]["belebele_swh_Latn"]
    assert belebele["validation"] == "scored"  # Belebele has only test: 10% of it is held out
    assert "no training split" in record["suite"]["splits"]["validation"]


def test_appended_tokens_are_trimmed_to_the_base_vocabulary(mirror):
    options = {"checkpoints": "custom", "base": BASE, "experts": f"math={MATH},sw=other/padded"}
    suite = prepared("llm-crosslingual", mirror, **options)
    rows = len(tiny_tokenizer())
    assert suite._trimmed == {"sw": f"{rows + 1} → {rows} embedding rows (appended: [PAD])"}
    pool = suite.pool()
    from safetensors.torch import load_file

    stored = load_file(mirror / "models" / "other/padded" / "model.safetensors")
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert stored[name].shape[0] == rows + 1 and pool.shape(name)[0] == rows
        assert torch.equal(pool.expert_tensor("sw", name), stored[name][:rows])
        assert torch.equal(pool.expert_tensor("sw", name, (rows - 2, rows)), stored[name][-3:-1])
    with pool.resident() as held:  # TIES' resident pool reads the trimmed rows too
        assert held
        for name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(pool.expert_tensor("sw", name), stored[name][:rows])
    model = suite.build_model(pool.expert_state("sw"))  # the base's shapes and tokenizer
    assert model.get_input_embeddings().weight.shape[0] == rows


def test_only_restricts_the_merged_experts(mirror):
    suite = SUITES.get("llm-math").obj(SuiteContext(mirror=mirror, progress=False))
    suite.select_tasks(["math", "instruction"])
    suite.prepare()
    assert suite.pool().tasks == ["instruction", "math"] and suite.tasks == ["math"]
    assert suite.checkpoint_set.endswith(":instruction,math")
    with pytest.raises(HarnessError, match="merge it too"):
        suite.select_tasks(["instruction"])  # math is scored, so it must be merged


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("suite", "extra", "message"),
    [
        ("llm-crosslingual", custom(f"math={MATH},fr=other/vocab-300"), "vocab_size=300"),
        ("llm-crosslingual", custom(f"math={MATH},fr=other/foreign-tokens"), "another tokenizer"),
        ("llm-math", ["--suite-set", "math_task=gsm8kk"], "has no task 'gsm8kk'"),
        ("llm-math", ["--suite-set", "tasks=math,coding"], "has no task 'humanevalplus'"),
        ("llm-math", ["--suite-set", "tasks=math,safety"], "safety cannot be scored"),
        ("llm-math", ["--suite-set", "tasks=math,instruction"], "langdetect|chat template"),
        ("llm-crosslingual", custom(f"math={MATH},ja={MATH}"), "refs/convert/parquet"),
        ("llm-math", ["--suite-set", "backend=vllm"], "needs vLLM"),
        ("llm-math", ["--backend", "vllm"], "needs vLLM"),
        ("llm-math", ["--checkpoints", "mergebench-llama-3b"], "is not one of"),
        ("llm-crosslingual", custom(f"math={MATH},sw"), "experts= expects"),
        ("llm-math", ["--only", "math,nosuch"], "has no expert 'nosuch'"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    mirror, tmp_path, monkeypatch, capsys, suite, extra, message
):
    if "vLLM" in message and lm_vllm.importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    code, _, err = cli(
        monkeypatch, capsys, *eval_args("task_arithmetic", suite, mirror, tmp_path), *extra
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not list(tmp_path.rglob("*.json"))


def test_data_based_methods_are_refused_up_front(mirror, tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, *eval_args("regmean", "llm-math", mirror, tmp_path))
    assert code == 2 and "does not provide" in err and len(err.strip().splitlines()) == 1


def test_a_chat_scored_skill_on_a_base_tokenizer_is_refused_before_merging(mirror, monkeypatch):
    # ifeval needs langdetect, absent here: a chat-scored stand-in takes its place
    from tasks.llm import math as llm_math

    chat = [bench.Benchmark("gsm8k", "exact_match,strict-match", chat=True)]
    monkeypatch.setitem(llm_math.SKILL_BENCHMARKS, "instruction", chat)
    with pytest.raises(LmEvalError, match="chat template.*base model"):
        prepared("llm-math", mirror, tasks="math,instruction")


def test_a_chat_task_on_a_tokenizer_without_template_is_refused() -> None:
    from harness.evaluation.lm_harness import score

    tokenizer = tiny_tokenizer()
    with pytest.raises(LmEvalError, match="chat template.*base model"):
        score(tiny_llama(tokenizer), tokenizer, [LmTask("gsm8k", "x")], apply_chat_template=True)


# ------------------------------------------------------------------------------ vLLM
def test_vllm_copy_holds_loadable_weights_and_is_removed(tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    with lm_vllm.saved_model(model, tokenizer, parent=tmp_path) as folder:
        names = {path.name for path in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
        assert not any(name.endswith((".bin", ".pt")) for name in names)
        loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
        ids = torch.tensor([[1, 2, 3]])
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert not folder.exists()
    with pytest.raises(RuntimeError), lm_vllm.saved_model(model, tokenizer, parent=tmp_path) as f:
        raise RuntimeError("scoring failed")
    assert not f.exists() and not list(tmp_path.iterdir())


def test_vllm_backend_scores_the_saved_copy(tmp_path, monkeypatch) -> None:
    """lm-eval's VLLM model replaced by one that loads the saved directory with HF: what
    vLLM would load, scored by the same lm-eval path, with the directory gone after."""
    from lm_eval.models.huggingface import HFLM

    seen: dict[str, object] = {}

    class DirectoryLM(HFLM):
        def __init__(self, pretrained: str, tokenizer: str, **kwargs: object) -> None:
            seen["path"], seen["kwargs"] = Path(pretrained), kwargs
            seen["files"] = sorted(p.name for p in Path(pretrained).iterdir())
            super().__init__(pretrained=pretrained, tokenizer=tokenizer, batch_size=2, device="cpu")

    fake = types.ModuleType("lm_eval.models.vllm_causallms")
    fake.VLLM = DirectoryLM  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", fake)
    monkeypatch.setattr(lm_vllm, "require_vllm", lambda: None)
    from tests.llama_mirror import write_gsm8k

    files = write_gsm8k(tmp_path / "gsm8k")
    tokenizer = tiny_tokenizer()
    task = LmTask(
        "gsm8k",
        "exact_match,strict-match",
        data_files=files,
        overrides={
            "num_fewshot": 1,
            "generation_kwargs": {"until": ["Question:"], "max_gen_toks": 4},
        },
    )
    result = lm_vllm.score_vllm(
        tiny_llama(tokenizer), tokenizer, [task], limit=2, parent=tmp_path / "work"
    )["gsm8k"]
    assert result.n == 2 and result.details["backend"] == "vllm"
    assert "model.safetensors" in seen["files"] and not Path(seen["path"]).exists()
    assert seen["kwargs"]["trust_remote_code"] is False


def test_missing_vllm_is_one_line() -> None:
    if lm_vllm.importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(LmEvalError, match=r"pip install -e '\.\[vllm\]'"):
        lm_vllm.require_vllm()


def test_mirror_fixture_is_self_contained(mirror) -> None:
    # the suites never write into the mirror (carves go to the harness cache)
    before = sorted(str(p) for p in mirror.rglob("*"))
    prepared("llm-math", mirror)
    assert sorted(str(p) for p in mirror.rglob("*")) == before
