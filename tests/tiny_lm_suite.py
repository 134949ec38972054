"""A three-task causal-LM suite on a tiny Llama, built in about a second: the LM
counterpart of tests/tiny_suite.py for methods that need ``provides`` "lm".

It has minimath's contracts (tasks/text/minimath): a streaming pool over safetensors
files of a real ``LlamaForCausalLM``, a word-level tokenizer with a pad token, and
batches of right-padded ``Question: q Answer: a<eos>`` fine-tuning sequences whose label
is the prompt length. Each expert is the base fine-tuned on its task's answers, so a
student distilled from one expert has something to approach. ``evaluate`` scores the
teacher-forced accuracy of the answer tokens (%), a cheap stand-in for lm-eval.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from harness.cache import cached_directory, content_key
from harness.evaluation.text import TokenizedSplit, bucketed_batches
from harness.suite import Artifact, Suite
from harness.weights.pool import Checkpoint, ExpertPool
from tasks.text.minimath import build
from tests.tiny_suite import built_artifacts

SIZES = {"train": 96, "validation": 48, "test": 32}
TASKS = ("add", "reverse", "double")
NUMBERS = [str(n) for n in range(20)]
CONFIG = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    tie_word_embeddings=False,
)
EXPERT_STEPS = 40


def _rows(task: str, split: str) -> list[dict[str, str]]:
    generator = np.random.default_rng([sum(map(ord, task)), sum(map(ord, split))])
    rows = []
    for _ in range(SIZES[split]):
        a, b, c = (int(v) for v in generator.integers(0, 10, size=3))
        if task == "add":
            rows.append({"question": f"{a} plus {b}", "answer": str(a + b)})
        elif task == "reverse":
            rows.append({"question": f"reverse {a} {b} {c}", "answer": f"{c} {b} {a}"})
        else:
            rows.append({"question": f"double {a}", "answer": str(2 * a)})
    return rows


def _tokenizer():
    words = ["Question:", "Answer:", "plus", "reverse", "double", *NUMBERS]
    return build.train_tokenizer([" ".join(words)], words)


def _sequences(tokenizer, task: str, split: str, limit: int | None = None) -> TokenizedSplit:
    sequences = build.sft_sequences(tokenizer, _rows(task, split)[:limit])
    prompts = [row.count(build.IGNORE) for row in sequences.targets]
    return TokenizedSplit(
        [np.asarray(ids, dtype=np.int64) for ids in sequences.ids], np.asarray(prompts)
    )


def answer_log_probs(model: torch.nn.Module, inputs: torch.Tensor, prompts: torch.Tensor, pad: int):
    """Log-probabilities of the next token at the answer positions, and those targets."""
    log_probs = F.log_softmax(model(input_ids=inputs).logits.float(), dim=-1)
    lengths = (inputs != pad).sum(dim=1)
    rows, targets = [], []
    for index in range(len(inputs)):
        start, stop = int(prompts[index]) - 1, int(lengths[index]) - 1
        rows.append(log_probs[index, start:stop])
        targets.append(inputs[index, start + 1 : stop + 1])
    return torch.cat(rows), torch.cat(targets)


class TinyLmSuite(Suite):
    tasks = list(TASKS)
    metric = "accuracy"
    provides: ClassVar[frozenset[str]] = frozenset({"batches", "lm"})

    def prepare(self) -> None:
        self._tokenizer = _tokenizer()
        self.pad = self._tokenizer.pad_token_id
        self._config = LlamaConfig(vocab_size=len(self._tokenizer), **CONFIG)
        key = content_key("tiny-lm-suite", CONFIG, SIZES, EXPERT_STEPS, 1)
        self.root = cached_directory(key, self._build, namespace="tiny-lm-suite")

    def _build(self, directory: Path) -> None:
        torch.manual_seed(0)
        base = LlamaForCausalLM(self._config)
        save_file(_contiguous(base), str(directory / "base.safetensors"))
        for task in TASKS:
            expert = self.build_model(base.state_dict()).train()
            optimizer = torch.optim.Adam(expert.parameters(), lr=1e-2)
            batches = list(self.batches(task, "train", batch_size=32))
            for step in range(EXPERT_STEPS):
                inputs, prompts = batches[step % len(batches)]
                log_probs, targets = answer_log_probs(expert, inputs, prompts, self.pad)
                loss = F.nll_loss(log_probs, targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            save_file(_contiguous(expert), str(directory / f"{task}.safetensors"))

    def pool(self) -> ExpertPool:
        return ExpertPool(
            Checkpoint(self.root / "base.safetensors", "tiny-lm/base"),
            {
                task: Checkpoint(self.root / f"{task}.safetensors", f"tiny-lm/{task}")
                for task in self.tasks
            },
        )

    def build_model(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        model = LlamaForCausalLM(self._config)
        model.load_state_dict(dict(state), strict=True)
        return model.eval()

    def batches(
        self, task: str, split: str, *, batch_size: int = 32, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        tokens = _sequences(self._tokenizer, task, split, limit)
        return bucketed_batches(tokens, pad_id=self.pad, batch_size=batch_size, limit=limit)

    def token_mask(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs != self.pad

    def evaluate(
        self, model: torch.nn.Module, task: str, split: str = "test", *, limit: int | None = None
    ) -> dict[str, float]:
        """Teacher-forced accuracy (%) of the answer tokens."""
        right = total = 0
        with torch.no_grad():
            for inputs, prompts in self.batches(task, split, limit=limit):
                log_probs, targets = answer_log_probs(model, inputs, prompts, self.pad)
                right += int((log_probs.argmax(dim=-1) == targets).sum())
                total += len(targets)
        return {"accuracy": 100.0 * right / max(total, 1)}

    def artifacts(self) -> list[Artifact]:
        return built_artifacts(self.root, "tiny-lm", self.tasks)


def _contiguous(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
