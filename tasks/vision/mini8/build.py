"""How mini8's models are made, mirroring how vit8's were: pretrain, heads, fine-tune.

1. Pretrain a small CLIP vision tower briefly on the train splits of all eight tasks
   (one throwaway head per task; no test image is seen), so that it knows each kind of
   task only partly, as CLIP knows vit8's.
2. Fit one linear head per task on the frozen pretrained features (logistic regression
   on the train split): the stand-in for CLIP's zero-shot text heads.
3. Fine-tune one expert per task from the pretrained tower with its head frozen, with
   the same recipe for every task (Adam, fixed steps and batch size), as the vit8
   experts were; every merged tower is then scored with the same frozen heads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from harness.progress import progress_bar


@dataclass(frozen=True)
class Recipe:
    hidden_size: int = 64
    layers: int = 4
    heads: int = 4
    patch_size: int = 4
    pretrain_steps: int = 200
    pretrain_lr: float = 2e-3
    finetune_steps: int = 600
    finetune_lr: float = 3e-4
    batch_size: int = 128
    head_c: float = 1.0
    seed: int = 0

    def config(self) -> CLIPVisionConfig:
        return CLIPVisionConfig(
            hidden_size=self.hidden_size,
            intermediate_size=2 * self.hidden_size,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            image_size=16,
            patch_size=self.patch_size,
            num_channels=3,
        )

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class PooledVisionTower(CLIPVisionModel):
    """CLIP's vision tower mapping pixels to pooled features; names equal the pool's."""

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(pixel_values=pixel_values).pooler_output


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] images → the tower's input range."""
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    return (images - 0.5) / 0.5


def new_tower(recipe: Recipe) -> PooledVisionTower:
    torch.manual_seed(recipe.seed)
    return PooledVisionTower(recipe.config())


def _batches(count: int, batch_size: int, steps: int, generator: torch.Generator):
    """Indices of ``steps`` minibatches, reshuffling each epoch."""
    order = torch.randperm(count, generator=generator)
    position = 0
    for _ in range(steps):
        if position + batch_size > count:
            order = torch.randperm(count, generator=generator)
            position = 0
        yield order[position : position + batch_size]
        position += batch_size


def _train(
    parameters: list[torch.nn.Parameter],
    loss_of,
    count: int,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    desc: str,
    progress: bool,
) -> None:
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            min(1.0, (step + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(step, steps) / steps))
        ),
    )
    generator = torch.Generator().manual_seed(seed)
    batches = _batches(count, batch_size, steps, generator)
    for index in progress_bar(batches, total=steps, desc=desc, enabled=progress):
        loss = loss_of(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()


def pretrain(
    train: Mapping[str, tuple[torch.Tensor, torch.Tensor]], recipe: Recipe, progress: bool = True
) -> PooledVisionTower:
    """Step 1: a short multi-task run over the train splits, one throwaway head per task.

    Short on purpose: like CLIP on vit8's tasks, the tower knows each kind of task only
    partly, so fine-tuning has something to add and merging has something to lose.
    """
    tower = new_tower(recipe).train()
    images = torch.cat([pair[0] for pair in train.values()])
    labels = torch.cat([pair[1] for pair in train.values()])
    sources = torch.cat([torch.full((len(pair[1]),), i) for i, pair in enumerate(train.values())])
    heads = torch.nn.ModuleList(
        torch.nn.Linear(recipe.hidden_size, int(pair[1].max()) + 1) for pair in train.values()
    )

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        features = tower(normalise(images[index]))
        loss = features.new_zeros(())
        for source, head in enumerate(heads):
            chosen = sources[index] == source
            if chosen.any():
                logits = head(features[chosen])
                loss = loss + F.cross_entropy(logits, labels[index][chosen], reduction="sum")
        return loss / len(index)

    _train(
        list(tower.parameters()) + list(heads.parameters()),
        loss_of,
        len(images),
        recipe.pretrain_steps,
        recipe.pretrain_lr,
        recipe.batch_size,
        recipe.seed + 2,
        "mini8 pretrain",
        progress,
    )
    return tower.eval()


@torch.no_grad()
def features(tower: torch.nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    tower.eval()
    return torch.cat(
        [tower(normalise(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    )


def fit_head(
    tower: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: Recipe
) -> torch.nn.Linear:
    """Step 2: multinomial logistic regression on frozen pretrained features.

    Features are standardised for the solver, and the scaling folded back into the
    linear layer, so the head takes the tower's raw features.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    inputs = features(tower, images).double()
    mean, std = inputs.mean(0), inputs.std(0).clamp(min=1e-6)
    model = LogisticRegression(C=recipe.head_c, max_iter=500)
    with threadpool_limits(1):  # a small problem: BLAS threads only contend
        model.fit(((inputs - mean) / std).numpy(), labels.numpy())
    weight = torch.from_numpy(model.coef_) / std
    bias = torch.from_numpy(model.intercept_) - weight @ mean
    head = torch.nn.Linear(inputs.shape[1], len(model.classes_))
    with torch.no_grad():
        head.weight.copy_(weight.float())
        head.bias.copy_(bias.float())
    return head.eval()


def finetune(
    pretrained_state: Mapping[str, torch.Tensor],
    head: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: Recipe,
    task: str,
    progress: bool = True,
) -> PooledVisionTower:
    """Step 3: the whole tower fine-tuned on one task through its frozen head."""
    tower = new_tower(recipe)
    tower.load_state_dict(dict(pretrained_state))
    tower.train()
    head = head.eval().requires_grad_(False)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head(tower(normalise(images[index]))), labels[index])

    salt = sum(map(ord, task))
    _train(
        list(tower.parameters()),
        loss_of,
        len(labels),
        recipe.finetune_steps,
        recipe.finetune_lr,
        recipe.batch_size,
        recipe.seed + salt,
        f"fine-tune {task}",
        progress,
    )
    return tower.eval()
