"""Flan-T5 as the harness sees it: pool names, the one-tensor model, label-word heads.

Pool names are T5ForConditionalGeneration's own, one per tensor: the input embedding is
``shared.weight`` (T5 ties ``encoder.embed_tokens`` and ``decoder.embed_tokens`` to it, and
checkpoints store it under any of the three names, so all three map to it); Flan-T5 (T5
v1.1) has its own untied ``lm_head.weight``, which stays a separate tensor. A tied tensor
is therefore merged and counted once.

``build_t5(config, state)`` gives a :class:`T5NextToken`: its ``forward(input_ids)`` runs the
encoder on the prompt ids (mask from the pad id) and the decoder on the start token alone
(or on a prefix set by :func:`harness.evaluation.generation.decoding`) and returns the
logits of the next target token, ``[B, vocab]``. ``named_parameters()`` are exactly the
pool names, so data-based methods hook its ``nn.Linear`` layers by name. Evaluation
decodes greedily as transformers' ``generate`` does (tests compare the two).

``LabelWordHead`` turns those logits into class logits: the logit of the first token of
each label word, so Fisher's cross-entropy and AdaMerging's entropy are over the label
words. For stsb, the classes are the distinct first tokens of the printed scores "0.0" …
"5.0" (Flan-T5's tokenizer starts "3.8" with "▁3": six classes, the integer parts 0..5).
Scoring itself always generates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from harness.errors import CheckpointError
from harness.evaluation.generation import PrefixedDecoder, greedy_loop
from harness.evaluation.text import attention_mask

SHARED = "shared.weight"
LM_HEAD = "lm_head.weight"
# Stored under any of these names, the input embedding is one tensor: ``shared.weight``.
EMBEDDING_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Old checkpoints stored a relative attention bias in cross-attention that T5 never uses.
UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# What a hub download of a base or fully fine-tuned model fetches.
MODEL_FILES = ("*.json", "*.safetensors", "spiece.model")


def t5_key(name: str) -> str | None:
    """Stored tensor name → pool name (None: not a model parameter)."""
    if name in EMBEDDING_ALIASES:
        return SHARED
    if name in UNUSED:
        return None
    return name


class T5NextToken(PrefixedDecoder):
    """What the suite's models are (``isinstance`` checks); the concrete class subclasses
    transformers' T5 and is made on first use (:func:`next_token_class`), so importing the
    suite does not import transformers."""


def _model_class() -> type:
    import inspect

    from transformers import T5ForConditionalGeneration

    parameters = inspect.signature(T5ForConditionalGeneration.forward).parameters

    class T5ForNextToken(T5NextToken, T5ForConditionalGeneration):
        """T5ForConditionalGeneration whose one-tensor forward returns next-token logits.

        Called with keyword arguments (as ``generate`` calls it) it is the usual
        transformers forward."""

        # The decoder cache's argument and output name: ``cache`` in transformers 5.x,
        # ``past_key_values`` before.
        cache_argument = "cache" if "cache" in parameters else "past_key_values"

        def forward(self, input_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
            if kwargs or input_ids is None:
                return super().forward(input_ids=input_ids, **kwargs)
            prefix = self.decoder_prefix
            if prefix is None:
                start = self.config.decoder_start_token_id
                prefix = torch.full((input_ids.shape[0], 1), start, device=input_ids.device)
            output = super().forward(
                input_ids=input_ids,
                attention_mask=attention_mask(input_ids, self.config.pad_token_id),
                decoder_input_ids=prefix.to(input_ids.device),
                use_cache=False,
            )
            return output.logits[:, -1]

        def special_ids(self) -> dict[str, int]:
            config = self.config
            return {
                "start_id": int(config.decoder_start_token_id),
                "eos_id": int(_first(config.eos_token_id)),
                "pad_id": int(config.pad_token_id),
            }

        def greedy(self, input_ids: torch.Tensor, max_length: int) -> torch.Tensor:
            """Greedy decoding as ``generate(input_ids, max_length=...)`` does it (encoder
            once, decoder with its key/value cache), without generate's per-call setup,
            which dominates for GLUE's 1–4-token answers on small batches."""
            mask = attention_mask(input_ids, int(self.config.pad_token_id))
            encoded = self.encoder(input_ids=input_ids, attention_mask=mask)
            cache: list[Any] = [None]

            def next_logits(prefix: torch.Tensor) -> torch.Tensor:
                output = super(T5ForNextToken, self).forward(
                    encoder_outputs=encoded,
                    attention_mask=mask,
                    decoder_input_ids=prefix if cache[0] is None else prefix[:, -1:],
                    use_cache=True,
                    **{self.cache_argument: cache[0]},
                )
                cache[0] = getattr(output, self.cache_argument)
                return output.logits[:, -1]

            return greedy_loop(
                next_logits, input_ids.shape[0], input_ids.device,
                **self.special_ids(), max_length=max_length,
            )  # fmt: skip

    T5ForNextToken.__module__ = __name__
    return T5ForNextToken


_CLASS: list[type] = []


def next_token_class() -> type:
    if not _CLASS:
        _CLASS.append(_model_class())
    return _CLASS[0]


def _first(value: int | Sequence[int]) -> int:
    return value if isinstance(value, int) else value[0]


def build_t5(config: Any, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """A :class:`T5NextToken` with ``state`` (pool names) loaded, in eval mode.

    Built on the meta device and materialised empty, so no time goes into a random
    initialisation that the state overwrites; the stacks read the embedding from
    ``shared`` (:class:`SharedLookup`) and ``lm_head`` is untied when the state has its
    own (Flan-T5).
    """
    with torch.device("meta"):
        model = next_token_class()(config)
    untied = LM_HEAD in state
    if untied:
        model.lm_head.weight = nn.Parameter(torch.empty_like(model.lm_head.weight))
    if any(True for _ in model.buffers()):  # a transformers version with initialised buffers
        model = next_token_class()(config)
        if untied:
            model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    else:
        model = model.to_empty(device="cpu")
    for stack in (model.encoder, model.decoder):
        del stack._modules["embed_tokens"]
        object.__setattr__(stack, "embed_tokens", SharedLookup(model.shared))
    if not untied:
        model.lm_head.weight = model.shared.weight
    expected = dict(model.named_parameters())
    missing = [name for name in expected if name not in state]
    extra = [name for name in state if name not in expected]
    if missing or extra:
        detail = f"lacks {missing[0]}" if missing else f"has an unknown tensor {extra[0]}"
        raise CheckpointError(
            f"the state does not fit the T5 configuration ({detail}); the experts must be "
            "fine-tuned from the suite's base model"
        )
    with torch.no_grad():
        for name, parameter in expected.items():
            value = state[name]
            if tuple(value.shape) != tuple(parameter.shape):
                raise CheckpointError(
                    f"{name} has shape {list(value.shape)} but the T5 configuration needs "
                    f"{list(parameter.shape)}; the experts must be fine-tuned from the base"
                )
            parameter.copy_(value.to(parameter.dtype))
    return model.eval()


class SharedLookup:
    """The model's ``shared`` embedding as seen by the encoder and decoder stacks.

    transformers registers ``encoder.embed_tokens`` and ``decoder.embed_tokens`` as modules
    tied to ``shared``, so ``state_dict()`` lists the one tensor under three names. This
    plain object (not a submodule) looks the ids up in ``shared``, so the model's
    ``state_dict()`` and ``named_parameters()`` are exactly the pool's names and
    ``load_state_dict(pool_state, strict=True)`` works.
    """

    def __init__(self, shared: nn.Embedding) -> None:
        self.shared = shared

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.shared(input_ids)

    @property
    def weight(self) -> torch.Tensor:
        return self.shared.weight


class LabelWordHead(nn.Linear):
    """Class logits = the next-token logits of each class's first label token.

    A bias-free linear map whose rows are one-hot (so it is exactly a selection, and an
    output ensemble that averages vocabulary logits averages these too).
    """

    def __init__(self, vocab_size: int, token_ids: Sequence[int]) -> None:
        super().__init__(vocab_size, len(token_ids), bias=False)
        with torch.no_grad():
            self.weight.zero_()
            self.weight[torch.arange(len(token_ids)), torch.as_tensor(list(token_ids))] = 1.0
        self.weight.requires_grad_(False)
        self.token_ids = tuple(int(i) for i in token_ids)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(self.token_ids, device=logits.device)
        return logits.index_select(-1, index)


def first_token(tokenizer: Any, text: str) -> int:
    """The first token id of ``text`` as a target (special tokens left out)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise CheckpointError(f"the tokenizer turns the target {text!r} into no tokens")
    return int(ids[0])
