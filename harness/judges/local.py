"""A local transformers causal LM as the judge (``--judge local:<hub id or directory>``).

The model is resolved like every hub artifact (``--mirror DIR`` reads
``DIR/models/<id>/``; a directory path is used as it is), loaded with
``AutoModelForCausalLM`` (safetensors, never remote code) and decodes greedily through
transformers, with the tokenizer's chat template where it has one. A judge prompt that does
not fit the model's context with room for the answer is a counted ``failed`` outcome.

Options (``local:<id>?max_new_tokens=1024&device=cuda``): ``max_new_tokens`` (default
1024: the evaluation outline is long), ``device`` (auto: CUDA when there is one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.errors import CheckpointError
from harness.evaluation.causal_generation import (
    context_length,
    format_prompt,
    generate_greedy,
    token_count,
)
from harness.judges.base import Judge
from harness.judges.protocol import FAILED, JudgeUnavailable

DEFAULT_MAX_NEW_TOKENS = 1024


class LocalJudge(Judge):
    kind = "local"

    def __init__(
        self,
        target: str,
        *,
        mirror: Path | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        device: str = "auto",
    ) -> None:
        from harness.weights.hub import resolve
        from harness.weights.snapshot_id import snapshot_fingerprint

        if Path(target).expanduser().is_dir():
            self.path = Path(target).expanduser()
            self.model_id = self.path.name
            self.revision = f"files:{snapshot_fingerprint(self.path)}"
        else:
            resolved = resolve(target, "models", mirror=mirror)
            self.path, self.model_id, self.revision = resolved.path, target, resolved.identity()
        self.max_new_tokens = int(max_new_tokens)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def identity(self) -> str:
        return f"local:{self.model_id}@{self.revision}?max_new_tokens={self.max_new_tokens}"

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                str(self.path), trust_remote_code=False, use_safetensors=True
            )
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"the judge {self.model_id} at {self.path} cannot be loaded as a causal LM "
                f"with safetensors weights ({type(error).__name__}); give a causal LM snapshot"
            ) from None
        self._model = model.to(self.device).eval()

    def complete(self, system: str, user: str) -> str:
        if self._model is None:
            self._load()
        text = format_prompt(self._tokenizer, user, system)
        count = token_count(self._tokenizer, text)
        window = context_length(self._model)
        if count + self.max_new_tokens > window:
            raise JudgeUnavailable(
                FAILED,
                f"the judge prompt has {count} tokens; {self.model_id} takes {window} "
                f"including {self.max_new_tokens} to answer",
            )
        return generate_greedy(
            self._model,
            self._tokenizer,
            [text],
            max_new_tokens=self.max_new_tokens,
            batch_size=1,
            device=self.device,
            desc="judge",
        )[0]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model_id, "revision": self.revision}
