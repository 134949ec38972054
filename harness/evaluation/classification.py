"""Evaluation loops shared by every suite."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from harness.progress import progress_bar


@torch.no_grad()
def classification_accuracy(
    backbone: torch.nn.Module,
    head: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "eval",
) -> dict[str, float]:
    """Top-1 accuracy (percent) of ``head(backbone(x))`` over labelled batches."""
    backbone.eval()
    head = head.to(device).eval()
    correct = 0
    total = 0
    for inputs, labels in progress_bar(batches, desc=desc, enabled=progress):
        inputs = inputs.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        logits = head(backbone(inputs))
        correct += int((logits.argmax(dim=-1) == labels).sum())
        total += int(labels.numel())
    if total == 0:
        raise RuntimeError(f"{desc}: the split has no examples")
    return {"accuracy": 100.0 * correct / total, "n": float(total)}
