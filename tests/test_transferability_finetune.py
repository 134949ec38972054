"""The ground-truth protocol: a grid of fine-tunes, best on validation, resumable."""

from __future__ import annotations

import pytest
import torch

from harness.keyed_log import KeyedLog
from harness.transferability import finetune
from harness.transferability.finetune import FinetuneProtocol, finetuned_accuracy
from tests.tiny_suite import CONFIG, new_backbone


def _splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    prototypes = torch.randn(3, 3, 8, 8, generator=generator)
    splits = {}
    for split, size in (("train", 60), ("validation", 30), ("test", 30)):
        labels = torch.arange(size) % 3
        images = prototypes[labels] + 0.5 * torch.randn(size, 3, 8, 8, generator=generator)
        splits[split] = (images, labels)
    return splits


PROTOCOL = FinetuneProtocol(learning_rates=(1e-3, 1e-2), weight_decays=(0.0,), steps=8,
                            batch_size=16)  # fmt: skip


def test_grid_is_lr_by_weight_decay():
    protocol = FinetuneProtocol(learning_rates=(1e-4, 1e-3), weight_decays=(0.0, 0.1, 0.2))
    grid = protocol.grid()
    assert len(grid) == 6 and {"lr": 1e-3, "weight_decay": 0.2} in grid
    assert protocol.to_json()["optimizer"] == "AdamW"


def test_best_on_validation_is_scored_on_test_and_resumes(tmp_path, monkeypatch):
    log = KeyedLog(tmp_path / "finetune.jsonl")
    splits = _splits()
    truth = finetuned_accuracy(
        "tiny/a", lambda: new_backbone(0), CONFIG["hidden_size"], 3, splits, PROTOCOL, log
    )
    entry = log.get("tiny/a")
    assert entry is not None and len(entry["grid"]) == 2
    assert truth.validation == max(point["validation"] for point in entry["grid"])
    assert dict(truth.config) in [
        {"lr": p["lr"], "weight_decay": p["weight_decay"]} for p in entry["grid"]
    ]
    assert 0.0 <= truth.test <= 100.0
    # same seed, same numbers: a fresh log gives the same ground truth
    again = finetuned_accuracy(
        "tiny/a", lambda: new_backbone(0), CONFIG["hidden_size"], 3, splits, PROTOCOL,
        KeyedLog(tmp_path / "other.jsonl"),
    )  # fmt: skip
    assert again == truth

    # a finished pair is read back from the log, never trained again
    def refuse(*args, **kwargs):
        raise AssertionError("a finished pair was fine-tuned again")

    monkeypatch.setattr(finetune, "finetune_once", refuse)
    reopened = KeyedLog(tmp_path / "finetune.jsonl")
    assert (
        finetuned_accuracy(
            "tiny/a", lambda: new_backbone(0), CONFIG["hidden_size"], 3, splits, PROTOCOL, reopened
        )
        == truth
    )
    with pytest.raises(AssertionError, match="fine-tuned again"):
        finetuned_accuracy(
            "tiny/b", lambda: new_backbone(0), CONFIG["hidden_size"], 3, splits, PROTOCOL, reopened
        )


def test_fine_tuning_changes_the_backbone_and_learns():
    splits = _splits()
    backbone = new_backbone(0)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    config = {"lr": 1e-2, "weight_decay": 0.0}
    protocol = FinetuneProtocol(steps=30, batch_size=16)
    tuned, head = finetune.finetune_once(backbone, CONFIG["hidden_size"], 3, splits["train"],
                                         config, protocol, seed=1)  # fmt: skip
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert finetune.accuracy(tuned, head, splits["train"]) > 60.0
