"""How minimath's base and experts are made: a small Llama pretrained, then fine-tuned.

The tokenizer is word-level (``tokenizers``' WordLevel over whitespace-split words),
trained on the generated corpus of both languages and wrapped as transformers'
``PreTrainedTokenizerFast``; every number 0..100 is one token, so generated answers
decode to GSM8K's ``#### N`` text exactly. The base is a ``LlamaForCausalLM`` (6 layers,
hidden 64: bottom, middle and top layers for layer swapping) pretrained from scratch by
next-token prediction on :func:`data.pretraining_corpus`. Each expert is the base
fine-tuned on its task's train split (the validation carve left out) with the loss on the
answer tokens (supervised fine-tuning on ``Question: q Answer: a<eos>``); the experts train
the transformer layers and keep the base's token embeddings and LM head. The language
expert is made in two stages, as monolingual models are carried to a new language
(Artetxe, Ruder and Yogatama, ACL 2020, arXiv 1910.11856): first its language's word rows
of the embeddings and the LM head are learned on generic L2 text against the base's frozen
body (the other rows and the body stay the base's, bit for bit), then its transformer
layers are fine-tuned on its task with those rows kept; half its batches in that stage are
L2 text too (loss on every token), as the paper's language experts are trained on generic
target-language data. AdamW, linear warm-up then linear decay.
Everything is seeded: the same recipe gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.progress import progress_bar

EOS, PAD, UNK = "<eos>", "<pad>", "<unk>"
IGNORE = -100
VOCABULARY_ROWS = ("embed_tokens", "lm_head")  # the parameters with a row per token


@dataclass(frozen=True)
class Recipe:
    layers: int = 6
    hidden: int = 64
    heads: int = 4
    pretrain_documents: int = 30_000
    pretrain_steps: int = 1500
    pretrain_lr: float = 3e-3
    finetune_steps: int = 300
    finetune_lr: float = 1e-3
    #: the language expert's first stage: its language's word embeddings (input and
    #: output rows) learned on generic L2 text against the base's frozen body
    language_embedding_steps: int = 300
    language_embedding_lr: float = 3e-3
    lang2_text_share: float = 0.5  # fraction of the lang2 expert's batches that is L2 text
    batch_size: int = 32
    train_examples: int = 4000  # per task (math_l2: only to carve its validation split)
    test_examples: int = 150
    validation_examples: int = 100  # cap on the validation carve that selection scores
    weight_decay: float = 0.01
    warmup: float = 0.05
    seed: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def train_tokenizer(corpus: Sequence[str], vocabulary: Sequence[str]):
    """A word-level tokenizer over whitespace-split words, trained on ``corpus`` (both
    languages) with ``vocabulary`` (every word, number and markup) guaranteed in it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, EOS, UNK], min_frequency=1)
    tokenizer.train_from_iterator([*corpus, " ".join(vocabulary)], trainer=trainer)
    return wrap_tokenizer(tokenizer)


def wrap_tokenizer(tokenizer):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    return wrap_tokenizer(Tokenizer.from_file(str(path)))


def llama_config(recipe: Recipe, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden,
        intermediate_size=3 * recipe.hidden,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def new_model(config, state: Mapping[str, torch.Tensor] | None = None):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(config)
    if state is not None:
        model.load_state_dict(dict(state), strict=True)
    return model


@dataclass
class Sequences:
    """Token ids with per-token loss targets (IGNORE where no loss is taken)."""

    ids: list[list[int]]
    targets: list[list[int]]


def lm_sequences(tokenizer, texts: Sequence[str]) -> Sequences:
    """Plain text, loss on every next token (pretraining, continuation text)."""
    ids = [tokenizer.encode(text) + [tokenizer.eos_token_id] for text in texts]
    return Sequences(ids, [list(row) for row in ids])


def prompt(question: str) -> str:
    """The prompt of every minimath task (GSM8K's, on one line: the tokenizer splits on
    whitespace, so a newline would not survive a round trip)."""
    return f"Question: {question} Answer:"


def sft_sequences(tokenizer, rows: Sequence[Mapping[str, str]]) -> Sequences:
    """``Question: q Answer: a<eos>`` with the loss on the answer and the end token."""
    ids, targets = [], []
    for row in rows:
        context = tokenizer.encode(prompt(row["question"]))
        answer = tokenizer.encode(row["answer"]) + [tokenizer.eos_token_id]
        ids.append(context + answer)
        targets.append([IGNORE] * len(context) + answer)
    return Sequences(ids, targets)


def _batches(
    data: Sequences, batch_size: int, steps: int, generator: np.random.Generator
) -> Iterator[list[int]]:
    """``steps`` batches of indices, epochs of seeded permutations."""
    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += generator.permutation(len(data.ids)).tolist()
        yield order[:batch_size]
        order = order[batch_size:]


def _collate(data: Sequences, batch: Sequence[int], pad_id: int) -> tuple[torch.Tensor, ...]:
    width = max(len(data.ids[i]) for i in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, index in enumerate(batch):
        length = len(data.ids[index])
        ids[row, :length] = torch.as_tensor(data.ids[index])
        targets[row, :length] = torch.as_tensor(data.targets[index])
        mask[row, :length] = 1
    return ids, targets, mask


def train(
    model,
    parts: Sequence[tuple[Sequences, float]],
    *,
    steps: int,
    lr: float,
    recipe: Recipe,
    pad_id: int,
    salt: str,
    frozen: Sequence[str] = (),
    rows: torch.Tensor | None = None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Train ``model`` for ``steps`` batches drawn from ``parts`` ((data, share) pairs:
    each batch is one part's, chosen with the shares' probabilities); parameters whose
    name contains one of ``frozen`` stay as they are. ``rows`` (token ids) limits the
    token embeddings and the LM head to those vocabulary rows: the others keep their
    values exactly (no gradient, no weight decay). Returns the state."""
    model.train()
    salt_value = sum(map(ord, salt))
    generator = np.random.default_rng([recipe.seed, salt_value])
    trained = [(n, p) for n, p in model.named_parameters() if not any(f in n for f in frozen)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(name == n for n, _ in trained))
    limited = [p for n, p in trained if rows is not None and any(v in n for v in VOCABULARY_ROWS)]
    hooks = []
    if limited:
        keep = torch.zeros(model.config.vocab_size, 1)
        keep[rows] = 1.0
        hooks = [parameter.register_hook(lambda grad: grad * keep) for parameter in limited]
    groups = []
    for decays in (True, False):
        params = [
            p for _, p in trained if (p.ndim >= 2) == decays and not any(p is q for q in limited)
        ]
        if params:
            groups.append({"params": params, "weight_decay": recipe.weight_decay * decays})
    if limited:  # no weight decay either, so that the other rows keep their values exactly
        groups.append({"params": limited, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))
    warmup = max(1, int(recipe.warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )
    shares = np.asarray([share for _, share in parts], dtype=float)
    choices = generator.choice(len(parts), size=steps, p=shares / shares.sum())
    streams = [_batches(part, recipe.batch_size, steps, generator) for part, _ in parts]
    bar = progress_bar(range(steps), total=steps, desc=f"train {salt}", enabled=progress)
    for step in bar:
        part = int(choices[step])
        ids, targets, mask = _collate(parts[part][0], next(streams[part]), pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            targets[:, 1:].reshape(-1),
            ignore_index=IGNORE,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in trained], 1.0)
        optimizer.step()
        schedule.step()
    for hook in hooks:
        hook.remove()
    model.eval()
    return {
        name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()
    }
