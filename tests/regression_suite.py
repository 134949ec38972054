"""A suite that is not "backbone + frozen head → accuracy": the model's own output is scored.

Three regression tasks on one small MLP (no heads, no labels handed to methods), scored by
Spearman correlation ×100 as GLUE's STS-B is. It stands in for text-to-text and generation
suites (Flan-T5, lm-eval, judges) in the contract tests: the runner, the record and every
data-free method must work on it without knowing its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import save_file
from scipy.stats import spearmanr

from harness.cache import cached_directory, content_key
from harness.suite import Artifact, Suite
from harness.weights.pool import Checkpoint, ExpertPool
from tests.tiny_suite import built_artifacts

WIDTH = 8
TASKS = ("sum", "first", "last")
SIZES = {"train": 128, "validation": 48, "test": 64}


def new_model(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(WIDTH, 16), torch.nn.LayerNorm(16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).eval()


def task_split(task: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(sum(map(ord, task + split)))
    inputs = torch.randn(SIZES[split], WIDTH, generator=generator)
    target = {"sum": inputs.sum(1), "first": inputs[:, 0], "last": inputs[:, -1]}[task]
    return inputs, target


class RegressionSuite(Suite):
    """Three regression tasks scored by Spearman correlation of the model's output."""

    tasks = list(TASKS)
    metric = "spearman"
    builds: ClassVar[int] = 0  # how many times prepare() ran: refusals must come first

    def prepare(self) -> None:
        type(self).builds += 1
        key = content_key("regression-suite", WIDTH, SIZES, 1)
        self.root = cached_directory(key, self._build, namespace="regression-suite")

    def _build(self, directory: Path) -> None:
        save_file(new_model(0).state_dict(), str(directory / "base.safetensors"))
        for task in TASKS:
            expert = new_model(0)
            optimizer = torch.optim.Adam(expert.parameters(), lr=1e-2)
            inputs, target = task_split(task, "train")
            for _ in range(40):
                loss = torch.nn.functional.mse_loss(expert(inputs).squeeze(1), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            save_file(expert.state_dict(), str(directory / f"{task}.safetensors"))

    def pool(self) -> ExpertPool:
        experts = {
            task: Checkpoint(self.root / f"{task}.safetensors", f"reg/{task}")
            for task in self.tasks
        }
        return ExpertPool(Checkpoint(self.root / "base.safetensors", "reg/base"), experts)

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        model = new_model(0)
        model.load_state_dict(dict(state), strict=True)
        return model.eval()

    @torch.no_grad()
    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        inputs, target = task_split(task, split)
        if limit is not None:
            inputs, target = inputs[:limit], target[:limit]
        output = model(inputs.to(self.context.device)).squeeze(1).float().cpu()
        correlation = spearmanr(output.numpy(), target.numpy()).statistic
        return {"spearman": 100.0 * float(correlation), "n": len(target)}

    def artifacts(self) -> list[Artifact]:
        return built_artifacts(self.root, "reg", self.tasks)
