"""Ground truth for a zoo: fine-tune every (source, target) pair over a small grid.

The protocol is SFDA's at a CPU scale: the whole source backbone plus a new linear head
is trained on the target's training split for each learning-rate × weight-decay point
(AdamW, linear warm-up then cosine decay, fixed steps and batch size); the point with
the best validation accuracy is selected and only that model is scored on test. Every
pair is one line of a :class:`harness.keyed_log.KeyedLog` the moment it is done, so an
interrupted build resumes where it stopped.
"""

from __future__ import annotations

import itertools
import math
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.keyed_log import KeyedLog
from harness.method import hash_seed
from harness.progress import note, progress_bar
from harness.transferability.zoo import GroundTruth, ZooSuite

Split = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)


@dataclass(frozen=True)
class FinetuneProtocol:
    """The grid and the recipe; recorded with every zoo built from it."""

    learning_rates: tuple[float, ...] = (3e-4, 1e-3)
    weight_decays: tuple[float, ...] = (0.0, 0.1)
    steps: int = 40
    batch_size: int = 64
    warmup_fraction: float = 0.1
    head_lr_factor: float = 10.0  # the new head learns at 10x the backbone's rate
    seed: int = 0

    def grid(self) -> list[dict[str, float]]:
        return [
            {"lr": lr, "weight_decay": wd}
            for lr, wd in itertools.product(self.learning_rates, self.weight_decays)
        ]

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "optimizer": "AdamW", "schedule": "warmup+cosine"}


@torch.no_grad()
def accuracy(
    backbone: torch.nn.Module, head: torch.nn.Module, split: Split, batch_size: int = 1000
) -> float:
    """Top-1 accuracy (%) of head(backbone(x)) on a whole split, in batches, on the
    backbone's device."""
    backbone.eval()
    device = next(backbone.parameters()).device
    inputs, labels = split
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = head(backbone(inputs[start : start + batch_size].to(device)))
        expected = labels[start : start + batch_size].to(device)
        correct += int((logits.argmax(dim=1) == expected).sum())
    return 100.0 * correct / len(labels)


def finetune_once(
    backbone: torch.nn.Module,
    feature_dim: int,
    classes: int,
    train: Split,
    config: dict[str, float],
    protocol: FinetuneProtocol,
    seed: int,
    device: torch.device | None = None,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """One grid point: backbone + a new seeded linear head, trained end to end on
    ``device`` (the data stays where it is; each batch is moved)."""
    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(feature_dim, classes)
    with torch.no_grad():
        bound = 1 / math.sqrt(feature_dim)
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.zero_()
    backbone, head = backbone.to(device), head.to(device)
    groups = [
        {"params": list(backbone.parameters()), "lr": config["lr"]},
        {"params": list(head.parameters()), "lr": config["lr"] * protocol.head_lr_factor},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config["lr"], weight_decay=config["weight_decay"])
    warmup = max(1, int(protocol.steps * protocol.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            min(1.0, (step + 1) / warmup)
            * 0.5
            * (1 + math.cos(math.pi * min(step, protocol.steps) / protocol.steps))
        ),
    )
    inputs, labels = train
    backbone.train()
    order = torch.randperm(len(labels), generator=generator)
    position = 0
    for _ in range(protocol.steps):
        if position + protocol.batch_size > len(labels):
            order = torch.randperm(len(labels), generator=generator)
            position = 0
        index = order[position : position + protocol.batch_size]
        position += protocol.batch_size
        batch, expected = inputs[index].to(device), labels[index].to(device)
        loss = F.cross_entropy(head(backbone(batch)), expected)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return backbone.eval(), head.eval()


def finetuned_accuracy(
    key: str,
    make_backbone: Callable[[], torch.nn.Module],
    feature_dim: int,
    classes: int,
    splits: dict[str, Split],
    protocol: FinetuneProtocol,
    log: KeyedLog,
    device: torch.device | None = None,
) -> GroundTruth:
    """The pair's ground truth: read from ``log`` if done, else fine-tuned over the grid."""
    device = device or torch.device("cpu")
    if log.get(key) is None:
        with one_thread() if device.type == "cpu" else nullcontext():
            best: tuple[float, dict[str, float], torch.nn.Module, torch.nn.Module] | None = None
            scores = []
            for config in protocol.grid():
                seed = hash_seed(protocol.seed, f"{key}/{config['lr']}/{config['weight_decay']}")
                backbone, head = finetune_once(
                    make_backbone(), feature_dim, classes, splits["train"], config, protocol, seed,
                    device,
                )  # fmt: skip
                validation = accuracy(backbone, head, splits["validation"])
                scores.append({**config, "validation": validation})
                if best is None or validation > best[0]:
                    best = (validation, config, backbone, head)
            assert best is not None
            test = accuracy(best[2], best[3], splits["test"])
        entry = {"validation": best[0], "test": test, "config": best[1], "grid": scores}
        log.append(key, entry)
    done = log.get(key)
    assert done is not None
    return GroundTruth(done["validation"], done["test"], done["config"])


@contextmanager
def one_thread() -> Iterator[None]:
    """Fine-tune on one CPU thread: these small steps are thousands of tiny operators, and
    on shared cores two OpenMP threads wait on each other (mini8's tower at load 7 on two
    cores: 30 steps took 48 s on two threads, 2.6 s on one; harness/threads.py explains
    the mechanism)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class FinetunePair:
    """One (source, target) pair to fine-tune: how to make the source's backbone (a module
    whose forward gives ``[B, feature_dim]`` features) and the target's splits, loaded
    only when the pair is not in the log yet."""

    source: str
    target: str
    make_backbone: Callable[[], torch.nn.Module]
    feature_dim: int
    classes: int
    splits: Callable[[], dict[str, Split]]

    @property
    def key(self) -> str:
        return f"{self.source}/{self.target}"


def finetune_pairs(
    pairs: Sequence[FinetunePair],
    protocol: FinetuneProtocol,
    log: KeyedLog,
    *,
    device: torch.device | None = None,
    progress: bool = True,
    desc: str = "fine-tuning",
) -> dict[str, dict[str, GroundTruth]]:
    """Every pair's ground truth (target → source → truth): pairs already in ``log`` are
    read back, the others fine-tuned over ``protocol``'s grid and appended one by one, so
    an interrupted run resumes where it stopped. zoo-mini8's build and ``harness transfer
    finetune`` both run this."""
    remaining = [pair for pair in pairs if pair.key not in log]
    note(
        f"{desc}: {len(remaining)} of {len(pairs)} (source, target) pairs to fine-tune over "
        f"{len(protocol.grid())} grid points each ({protocol.steps} steps)"
    )
    truth: dict[str, dict[str, GroundTruth]] = {}
    for pair in progress_bar(list(pairs), desc=desc, enabled=progress):
        if pair.key in log:
            done = log.get(pair.key)
            assert done is not None
            result = GroundTruth(done["validation"], done["test"], done["config"])
        else:
            result = finetuned_accuracy(
                pair.key, pair.make_backbone, pair.feature_dim, pair.classes, pair.splits(),
                protocol, log, device,
            )  # fmt: skip
        truth.setdefault(pair.target, {})[pair.source] = result
    return truth


class FinetunableZoo(ZooSuite):
    """A zoo suite whose ground truth the harness computes (``harness transfer finetune``):
    it names its pairs, its protocol and where the resumable log lives."""

    @abstractmethod
    def finetune_protocol(self) -> FinetuneProtocol:
        """The grid and recipe its ground truth follows."""

    @abstractmethod
    def finetune_pairs(self) -> list[FinetunePair]:
        """Every (source, target) pair of the selected targets, in a fixed order."""

    @abstractmethod
    def finetune_log(self) -> Path:
        """The pair-by-pair log (``KeyedLog``) of this zoo's build and protocol."""
