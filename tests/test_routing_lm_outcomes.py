"""minimath-outcomes' scorer (harness/routing/experts.py): per-item outcomes read from
lm-eval's per-sample logs in document order under the ranked filter, and router features
from the pretrained LM's hidden states over the prompt only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.registry import SUITES
from harness.routing.experts import _samples, prompt_features
from tests.llama_mirror import tiny_llama, tiny_tokenizer


class _Logged:
    """What ``_samples`` reads of a suite: the last evaluation's details."""

    def __init__(self, details: dict) -> None:
        self.details = details

    def evaluation_details(self, task: str) -> dict:
        return self.details


def _line(doc_id: int, filter_: str, right: float) -> str:
    # the fields lm-eval 0.4's per-sample log has (see a minimath samples log)
    return json.dumps(
        {
            "arguments": [[f"Question: q{doc_id} Answer:", {"until": ["Question:"]}]],
            "doc": {"question": f"q{doc_id}"},
            "doc_id": doc_id,
            "exact_match": right,
            "filter": filter_,
            "filtered_resps": ["3"],
            "resps": [["3"]],
            "target": "#### 3",
        }
    )


def test_samples_are_read_in_document_order_under_the_ranked_filter(tmp_path: Path):
    log = tmp_path / "samples.jsonl"
    lines = [_line(2, "strict-match", 1.0), _line(0, "strict-match", 0.0)]
    lines += [_line(i, "flexible-extract", 1.0) for i in range(3)]
    lines.append(_line(1, "strict-match", 1.0))
    log.write_text("\n".join(lines) + "\n")
    suite = _Logged({"ranked_by": "exact_match,strict-match", "samples_log": str(log)})
    rows = _samples(suite, "math")
    assert [r["doc_id"] for r in rows] == [0, 1, 2]
    assert [r["score"] for r in rows] == [0.0, 1.0, 1.0]  # strict-match, not flexible
    assert rows[1]["prompt"] == "Question: q1 Answer:"
    log.write_text(_line(0, "strict-match", 1.0) + "\n" + _line(2, "strict-match", 1.0) + "\n")
    with pytest.raises(RuntimeError, match="one sample per document"):
        _samples(suite, "math")


def test_prompt_features_read_the_prompt_alone():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    prompts = ["Question: Tom has 3 apples. Answer:", "Question: Tom has 4 apples. Answer:"]
    features = prompt_features(model, tokenizer, prompts, torch.device("cpu"))
    assert features.shape == (2, 32) and features.dtype == np.float32
    assert not np.allclose(features[0], features[1])
    ids = torch.tensor([tokenizer(prompts[0])["input_ids"]])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
    assert np.allclose(features[0], hidden.mean(dim=0).numpy(), atol=1e-6)


def test_minimath_outcomes_is_registered_with_its_merge_suite():
    entry = SUITES.get("minimath-outcomes")
    assert entry.obj.source == "minimath" and entry.obj.merge_suite == "minimath"


def test_minimath_outcomes_end_to_end_agree_with_each_experts_own_record(
    monkeypatch, capsys, tmp_path, tmp_path_factory
):
    """The whole path on minimath's small test build: the table is scored through lm-eval
    (base and experts on every item), a router runs on it through the CLI, and each
    expert's test column on its own task averages to the accuracy its own `individual`
    record reports (the per-sample logs are read right, in order, under the right filter)."""
    pytest.importorskip("lm_eval")
    from harness.run.records import read_record, record_files
    from harness.suite import SuiteContext
    from tasks.text.minimath import suite as minimath
    from tests.test_minimath import SMALL_RECIPE
    from tests.test_runner_cli import invoke

    monkeypatch.setattr(minimath, "RECIPE", SMALL_RECIPE)
    # the same cache as tests/test_minimath.py's build: one small build per test session
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.getbasetemp() / "minimath-cache"))
    records = {}
    for method, suite_name in (("knn_router", "minimath-outcomes"), ("individual", "minimath")):
        results = tmp_path / method
        code, _, err = invoke(
            monkeypatch, capsys, "eval", "--method", method, "--tasks", suite_name,
            "--results", str(results), "--quiet", "--select", "defaults",
        )  # fmt: skip
        assert code == 0, err
        (path,) = record_files(results)
        records[method] = read_record(path)
    routed = records["knn_router"]
    assert routed["suite"]["name"] == "minimath-outcomes"
    assert routed["suite"]["checkpoint_set"].endswith("/outcomes-v1")  # no texts yet
    entry = SUITES.get("minimath-outcomes")
    outcomes = entry.obj(SuiteContext(progress=False, options=entry.resolve_params({})))
    outcomes.prepare()
    table = outcomes.table
    assert table.models == ("pretrained", "math", "lang2", "kind")
    assert np.isfinite(table.features).all() and table.features.shape[0] == len(table)
    test = table.splits == "test"
    for expert in ("math", "lang2", "kind"):
        rows = test & (table.tasks == expert)
        assert rows.sum() == SMALL_RECIPE.test_examples
        column = table.scores[rows, table.models.index(expert)]
        assert 100 * column.mean() == pytest.approx(
            records["individual"]["tasks"][expert]["metric"]
        )
