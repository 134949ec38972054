"""Dynamic logit fusion (harness/distillation/logit_fusion.py): the weight rule on hand
computed logits, the fused model's greedy decoding, and the method through the runner."""

from __future__ import annotations

import math

import pytest
import torch

from harness.distillation.logit_fusion import (
    GRID,
    LogitFusionLM,
    fuse_logits,
    fusion_weights,
)
from harness.registry import SUITES, Entry
from harness.suite import SuiteContext
from tests.tiny_lm_suite import TinyLmSuite


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _rule(large, small, experts, grid):
    """The paper's loss for every (expert, α) candidate, in plain Python; the argmin."""
    p, q = _softmax(large), _softmax(small)
    qs = [_softmax(e) for e in experts]
    best = None
    for t in range(len(experts)):
        for a in grid:
            fused = _softmax([lg + a * (e - s) for lg, e, s in zip(large, experts[t], small)])
            loss = sum(
                (_kl(fused, p) - _kl(qt, q)) ** 2 + (_kl(p, fused) - _kl(q, qt)) ** 2 for qt in qs
            )
            if best is None or loss < best[0] - 1e-12:
                best = (loss, t, a)
    return best


def test_one_expert_over_its_own_base_is_followed_exactly():
    # large = small: α = 1 on the expert reproduces it, so both KL terms match (loss 0)
    base = torch.tensor([0.0, 0.0, 0.0])
    expert = torch.tensor([[math.log(3.0), 0.0, -1.0]])
    alpha = fusion_weights(base, base, expert)
    assert alpha.tolist() == [1.0]
    fused = fuse_logits(base, base, expert, alpha)
    assert torch.allclose(fused, expert[0])
    # an expert that never moved from the base earns no weight (every α ties; 0 is first)
    assert fusion_weights(base, base, base[None]).tolist() == [0.0]


def test_the_rule_on_hand_computed_logits_matches_the_papers_loss():
    large = [1.0, 0.0, -0.5]
    small = [0.2, 0.1, 0.0]
    experts = [[1.5, 0.1, -0.4], [0.2, 1.2, 0.0]]
    loss, t, a = _rule(large, small, experts, GRID)
    alpha = fusion_weights(torch.tensor(large), torch.tensor(small), torch.tensor(experts))
    expected = [0.0, 0.0]
    expected[t] = a
    assert alpha.tolist() == pytest.approx(expected)
    assert a > 0  # the experts moved: the large model moves too


def test_weights_are_chosen_per_position():
    base = torch.zeros(2, 3)  # two positions
    experts = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    alpha = fusion_weights(base, base, experts)  # [positions, experts]
    for position in range(2):
        loss, t, a = _rule(base[position].tolist(), base[position].tolist(),
                           experts[:, position].tolist(), GRID)  # fmt: skip
        assert alpha[position, t].item() == pytest.approx(a)
        assert alpha[position, 1 - t].item() == 0.0


def test_generation_is_greedy_on_the_fused_logits_and_ignores_left_padding():
    from tests.llama_mirror import perturbed, tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    base = tiny_llama(tokenizer)
    experts = [perturbed(base, seed, scale=0.2) for seed in (1, 2)]
    fused = LogitFusionLM(base, base, experts).eval()
    assert fused.forward_passes_per_token == 3
    prompt = torch.tensor([[5, 9, 13, 17]])
    out = fused.generate(prompt, max_length=8, eos_token_id=-1)
    ids = prompt
    with torch.no_grad():
        for _ in range(4):  # the same greedy loop, by hand
            large = base(input_ids=ids).logits[:, -1]
            stack = torch.stack([e(input_ids=ids).logits[:, -1] for e in experts])
            alpha = fusion_weights(large, large, stack)
            token = fuse_logits(large, large, stack, alpha).argmax(-1)
            ids = torch.cat([ids, token[:, None]], dim=1)
    assert out.tolist() == ids.tolist()
    pad = 0
    padded = torch.tensor([[pad, pad, 5, 9, 13, 17], [3, 4, 5, 9, 13, 17]])
    mask = (torch.arange(6) >= 2).long()[None].repeat(2, 1)
    mask[1] = 1
    both = fused.generate(padded, attention_mask=mask, max_length=10, eos_token_id=-1)
    assert both[0, 2:].tolist() == out[0].tolist()  # the padded row generates as alone


def test_the_method_records_its_inference_cost(tmp_path, monkeypatch):
    from harness.run.runner import RunSpec, run

    SUITES.discover()
    monkeypatch.setitem(
        SUITES._entries,
        "tinylm",
        Entry(name="tinylm", kind="suite", obj=TinyLmSuite, family="suite"),
    )
    monkeypatch.setattr(TinyLmSuite, "name", "tinylm", raising=False)
    spec = RunSpec(
        method="dynamic_logit_fusion",
        suite="tinylm",
        overrides={},
        device="cpu",
        results_dir=tmp_path,
        progress=False,
    )
    record, _ = run(spec)
    info = record["method_info"]
    assert info["forward_passes_per_token"] == 4 and info["inference_models"] == 4
    suite = TinyLmSuite(SuiteContext(progress=False))
    suite.prepare()
    per_model = sum(tensor.numel() for tensor in suite.pool().base_state().values())
    assert record["extra_parameters"] == 3 * per_model  # the experts kept beside the base
    assert set(record["tasks"]) == set(TinyLmSuite.tasks)
    assert all(0.0 <= entry["metric"] <= 100.0 for entry in record["tasks"].values())
