"""The distillation equations on hand-made numbers (harness/distillation)."""

from __future__ import annotations

import math

import pytest
import torch

from harness.distillation.budget import epoch_order
from harness.distillation.loop import warmup_cosine
from harness.distillation.losses import (
    feature_loss,
    fusellm_loss,
    kd_loss,
    min_cross_entropy_choice,
)
from harness.distillation.tokens import fuse, next_token_targets, teacher_tokens


def test_kd_loss_is_t_squared_kl_of_softened_distributions():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0 * math.log(3.0), 0.0]])  # at T = 2: p = (3/4, 1/4)
    p = torch.tensor([0.75, 0.25])
    kl = float((p * (p / 0.5).log()).sum())  # student at T = 2: (1/2, 1/2)
    assert kd_loss(student, teacher, 2.0).item() == pytest.approx(4.0 * kl, rel=1e-6)
    assert kd_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_loss_averages_over_the_batch():
    a = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    rows = [kd_loss(a[i : i + 1], b[i : i + 1], 1.5) for i in range(2)]
    assert kd_loss(a, b, 1.5).item() == pytest.approx(float(sum(rows) / 2), rel=1e-6)


def test_feature_loss_is_the_mean_squared_error():
    assert feature_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0]])).item() == 5.0


def test_min_ce_fusion_picks_per_sequence_as_the_paper_and_per_token_on_request():
    # two teachers, one sequence of two answer positions, vocabulary of three
    first = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # sure of token 0, then vague
    second = torch.tensor([[[0.0, 5.0, 0.0], [0.0, 0.0, 5.0]]])  # wrong, then sure of 2
    gold = torch.tensor([[0, 2]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    teachers = [teacher_tokens(t, gold, mask, top_k=3) for t in (first, second)]
    ce = [float(t.sequence_ce) for t in teachers]
    log_first = torch.log_softmax(first, dim=-1)
    assert ce[0] == pytest.approx(-(log_first[0, 0, 0] + log_first[0, 1, 2]).item() / 2)
    assert ce[0] < ce[1]  # the first teacher wins the sequence as a whole ...
    by_sequence = fuse(teachers, gold, mask, "sequence")
    assert by_sequence.choice.tolist() == [0]
    assert torch.allclose(by_sequence.probs.sum(-1), torch.ones(1, 2))
    expected = torch.softmax(first[0, 1], dim=-1)  # ... so it teaches position 1 too
    assert torch.allclose(by_sequence.probs[0, 1].sort().values, expected.sort().values)
    by_token = fuse(teachers, gold, mask, "token")  # ... though the second knows it better
    assert by_token.choice.tolist() == [[0, 1]]
    assert by_token.indices[0, 1, 0] == 2 and by_token.probs[0, 1, 0] > 0.98
    assert min_cross_entropy_choice(torch.tensor([[2.0, 1.0], [1.0, 1.0]])).tolist() == [1, 0]


def test_top_k_keeps_the_k_largest_logits_and_renormalises():
    logits = torch.tensor([[[3.0, 1.0, 2.0, -1.0]]])
    kept = teacher_tokens(logits, torch.tensor([[3]]), torch.ones(1, 1, dtype=torch.bool), 2)
    assert kept.indices.tolist() == [[[0, 2]]]
    # the cross-entropy is the full distribution's, not the truncated one's
    assert float(kept.token_ce) == pytest.approx(-torch.log_softmax(logits, -1)[0, 0, 3].item())
    fused = fuse([kept], torch.tensor([[3]]), torch.ones(1, 1, dtype=torch.bool), "sequence")
    e = math.exp(1.0)
    assert fused.probs.tolist()[0][0] == pytest.approx([e / (e + 1), 1 / (e + 1)])


def test_loss_positions_are_those_that_predict_answer_tokens():
    pad = 0
    inputs = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, pad, pad]])  # prompts of 2 and 2
    gold, mask = next_token_targets(inputs, torch.tensor([2, 2]), inputs != pad)
    assert gold[0].tolist() == [6, 7, 8, 9, 9]
    # row 0: answer tokens 7, 8, 9 are predicted at positions 1, 2, 3; row 1: 7 at 1
    assert mask.tolist() == [[False, True, True, True, False], [False, True, False, False, False]]


def test_fusellm_loss_is_point_nine_lm_plus_point_one_ce_to_the_sparse_target():
    student = torch.tensor([[[1.0, 0.0, -1.0]]])
    gold = torch.tensor([[1]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    indices = torch.tensor([[[2, 0]]])
    probs = torch.tensor([[[0.75, 0.25]]])
    log_s = torch.log_softmax(student[0, 0], dim=-1)
    lm = -log_s[1]
    kd = -(0.75 * log_s[2] + 0.25 * log_s[0])
    loss = fusellm_loss(student, gold, mask, indices, probs)
    assert loss.item() == pytest.approx((0.9 * lm + 0.1 * kd).item(), rel=1e-6)
    off = fusellm_loss(student, gold, torch.zeros(1, 1, dtype=torch.bool), indices, probs)
    assert off.item() == 0.0


def test_fusion_on_a_tiny_llama_follows_each_teachers_unpadded_cross_entropy():
    """Real Llamas: the padded batch's per-sequence CE equals each sequence run alone, the
    fused target is the lowest-CE teacher's softmax, and with k = V and λ = 0 the loss is
    the cross-entropy of the student under that teacher's whole distribution."""
    from harness.distillation.tokens import lm_logits
    from tests.llama_mirror import perturbed, tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    student = tiny_llama(tokenizer)
    teachers = [perturbed(student, seed, scale=0.3) for seed in (1, 2, 3)]
    pad = tokenizer.eos_token_id + 1 if tokenizer.eos_token_id == 0 else 0
    rows = [[11, 12, 13, 14, 15, 16], [21, 22, 23, 24, pad, pad], [31, 32, 33, 34, 35, pad]]
    inputs, prompts = torch.tensor(rows), torch.tensor([2, 3, 2])
    gold, mask = next_token_targets(inputs, prompts, inputs != pad)
    vocab = student.config.vocab_size
    with torch.no_grad():
        kept = [teacher_tokens(lm_logits(t)(inputs), gold, mask, vocab) for t in teachers]
        alone = torch.tensor(
            [
                [
                    -torch.log_softmax(t(input_ids=inputs[i : i + 1, :n]).logits[0], -1)[
                        torch.arange(int(prompts[i]) - 1, n - 1), inputs[i, int(prompts[i]) : n]
                    ].mean()
                    for i, n in enumerate((inputs != pad).sum(1).tolist())
                ]
                for t in teachers
            ]
        )
        fused = fuse(kept, gold, mask, "sequence")
        student_logits = lm_logits(student)(inputs)
    assert torch.allclose(torch.stack([k.sequence_ce for k in kept]), alone, atol=1e-5)
    assert fused.choice.tolist() == alone.argmin(dim=0).tolist()
    log_s = torch.log_softmax(student_logits.float(), dim=-1)
    total, count = 0.0, 0
    for i, choice in enumerate(fused.choice.tolist()):
        with torch.no_grad():
            q = torch.softmax(lm_logits(teachers[choice])(inputs[i : i + 1])[0].float(), -1)
        for p in mask[i].nonzero().flatten().tolist():
            total += -(q[p] * log_s[i, p]).sum().item()
            count += 1
    loss = fusellm_loss(student_logits, gold, mask, fused.indices, fused.probs, lm_weight=0.0)
    assert loss.item() == pytest.approx(total / count, rel=1e-4)


def test_warmup_then_cosine():
    factor = warmup_cosine(10, 0.2)  # two warmup steps
    assert [factor(0), factor(1)] == [0.5, 1.0]
    assert factor(2) == pytest.approx(1.0)
    assert factor(6) == pytest.approx(0.5)  # half-way through the 8 decay steps
    assert warmup_cosine(4, 0.0)(0) == 1.0


def test_epochs_are_seeded_permutations():
    order = epoch_order(3, 7, torch.Generator().manual_seed(0))
    assert len(order) == 7
    assert sorted(order[:3]) == [0, 1, 2] and sorted(order[3:6]) == [0, 1, 2]
    assert order == epoch_order(3, 7, torch.Generator().manual_seed(0))


def test_batches_of_one_shape_run_in_one_call_and_split_back():
    from harness.distillation.batching import chunks, forward_batches

    calls = []

    def model(x):
        calls.append(len(x))
        return 2 * x

    parts = [torch.ones(2, 3), torch.zeros(1, 3)]
    outputs = forward_batches(model, parts, torch.device("cpu"))
    assert calls == [3] and [o.shape[0] for o in outputs] == [2, 1]
    assert torch.equal(outputs[0], 2 * parts[0])
    calls.clear()
    forward_batches(model, [torch.ones(2, 3), torch.ones(2, 4)], torch.device("cpu"))
    assert calls == [2, 2]  # different lengths: one call each
    assert chunks([3, 3, 3, 5, 1], 6) == [[0, 1], [2], [3, 4]]
