"""The lm-eval bridge: an in-memory model scored on lm-eval's own gsm8k, data from parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from harness.evaluation.lm_harness import LmEvalError, LmTask, score, task_config  # noqa: E402
from tests.llama_mirror import tiny_llama, tiny_tokenizer, write_gsm8k  # noqa: E402


@pytest.fixture(scope="module")
def gsm8k_files(tmp_path_factory) -> dict[str, str]:
    return write_gsm8k(tmp_path_factory.mktemp("gsm8k"))


def test_registered_task_is_pointed_at_local_parquet(gsm8k_files) -> None:
    config = task_config(LmTask("gsm8k", "exact_match,strict-match", data_files=gsm8k_files))
    assert config["dataset_path"] == "parquet"
    assert "dataset_name" not in config
    assert config["dataset_kwargs"]["data_files"]["test"] == gsm8k_files["test"]
    # lm-eval's own protocol is kept: prompt, 5-shot, both filters
    assert config["doc_to_text"] == "Question: {{question}}\nAnswer:"
    assert config["num_fewshot"] == 5
    assert [f["name"] for f in config["filter_list"]] == ["strict-match", "flexible-extract"]


def test_unknown_task_and_missing_split_fail_in_one_line(gsm8k_files) -> None:
    with pytest.raises(LmEvalError, match="no task 'gsm8kk'"):
        task_config(LmTask("gsm8kk", "exact_match,strict-match"))
    with pytest.raises(LmEvalError, match="split 'train'"):
        task_config(
            LmTask("gsm8k", "exact_match,strict-match", data_files={"test": gsm8k_files["test"]})
        )


def _gsm8k(files, **overrides) -> LmTask:
    """gsm8k over the local parquet files, ranked by strict-match."""
    return LmTask("gsm8k", "exact_match,strict-match", data_files=files, overrides=overrides)


def test_in_memory_model_is_scored_with_details_and_samples(gsm8k_files, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    task = _gsm8k(
        gsm8k_files,
        num_fewshot=2,
        generation_kwargs={"until": ["Question:"], "do_sample": False, "max_gen_toks": 8},
    )
    first = score(model, tokenizer, [task], limit=3, samples_dir=tmp_path)["gsm8k"]
    assert first.n == 3
    assert set(first.metrics) == {
        "exact_match,strict-match",
        "exact_match,flexible-extract",
        "no_answer,strict-match",  # share of responses without a parsable answer
        "no_answer,flexible-extract",
    }
    assert all(0.0 <= v <= 100.0 for v in first.metrics.values())
    details = first.details
    assert details["n_shot"] == 2 and details["task_version"] == 3.0
    assert details["filters"] == ["strict-match", "flexible-extract"]
    log = Path(details["samples_log"])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # one line per document and filter, each with the response and the filtered answer
    assert len(lines) == 6 and {line["filter"] for line in lines} == set(details["filters"])
    assert all("filtered_resps" in line and "resps" in line for line in lines)
    # greedy and seeded: the same model gives the same responses and log
    again = score(model, tokenizer, [task], limit=3, samples_dir=tmp_path)["gsm8k"]
    assert again.metrics == first.metrics and again.details["samples_log"] == str(log)


def test_lm_eval_draws_no_bars_into_a_redirected_log(gsm8k_files, capfd) -> None:
    """stderr is not a terminal here: lm-eval's request and context bars stay silent."""
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    task = _gsm8k(gsm8k_files, generation_kwargs={"until": ["Question:"], "max_gen_toks": 4})
    capfd.readouterr()
    result = score(model, tokenizer, [task], limit=2)["gsm8k"]
    assert result.n == 2
    err = capfd.readouterr().err
    assert "Running generate_until" not in err and "it/s]" not in err, err[-500:]


def test_silenced_request_methods_are_the_lm_classes_again_afterwards() -> None:
    from harness.evaluation.lm_harness import lm_eval_bars

    class FakeLM:
        def generate_until(self, requests, disable_tqdm: bool = False):
            return disable_tqdm

        def loglikelihood(self, requests):  # no switch: left alone
            return None

    lm = FakeLM()
    with lm_eval_bars(lm):  # bars are off: stderr is not a terminal under pytest
        assert lm.generate_until([]) is True
        assert "loglikelihood" not in vars(lm)
    assert "generate_until" not in vars(lm) and lm.generate_until([]) is False
