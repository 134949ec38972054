"""Greedy generation with a transformers causal LM: what a generated-response suite and a
local judge share.

A prompt is formatted with the tokenizer's chat template where it has one (an instruction
model answers as it was trained to), else as plain text followed by a ``Response:`` cue (a
base model continues it). Prompts are decoded greedily (temperature 0) in left-padded
batches ordered by length, and returned in the caller's order, without special tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.progress import progress_bar

PLAIN_CUE = "\n\nResponse:\n"


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer: Any, user: str, system: str | None = None) -> str:
    """The text the model sees for one prompt (chat template, else plain text + cue)."""
    if has_chat_template(tokenizer):
        messages = [{"role": "user", "content": user}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        try:
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # a template without a system turn: fold the system text in
            merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
            return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    text = f"{system}\n\n{user}" if system else user
    return text.rstrip() + PLAIN_CUE


def token_count(tokenizer: Any, text: str) -> int:
    """Tokens of a formatted prompt, as :func:`generate_greedy` encodes it."""
    return len(tokenizer(text, add_special_tokens=not has_chat_template(tokenizer))["input_ids"])


def context_length(model: torch.nn.Module, default: int = 2048) -> int:
    """The model's context window (``max_position_embeddings``), where its config says."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if config is not None else None
    return int(getattr(text_config, "max_position_embeddings", None) or default)


@torch.no_grad()
def generate_greedy(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 4,
    device: torch.device | None = None,
    desc: str = "generate",
) -> list[str]:
    """Greedy continuations of formatted prompts (see :func:`format_prompt`)."""
    if not hasattr(model, "generate"):
        from harness.errors import HarnessError

        raise HarnessError(
            f"{type(model).__name__} cannot generate text (no generate()); generated-response "
            "suites need one causal LM per task, as merging methods return"
        )
    device = device or next(model.parameters()).device
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    special = not has_chat_template(tokenizer)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    for start in progress_bar(range(0, len(order), batch_size), desc=desc):
        chosen = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in chosen],
            return_tensors="pt",
            padding=True,
            add_special_tokens=special,
        ).to(device)
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
        )
        new = generated[:, batch["input_ids"].shape[1] :]
        for index, row in zip(chosen, new):
            outputs[index] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return outputs
