"""A tiny glue-gpt2 mirror: real GPT-2 architectures and a real byte-level BPE tokenizer.

- ``models/gpt2``: a GPT2Model (2 layers, width 32, 512 positions) saved with
  ``save_pretrained`` (names without a prefix, as the hub's ``gpt2`` stores them), plus
  a GPT-2 tokenizer trained with the ``tokenizers`` library on the tiny GLUE's words,
  with ``<|endoftext|>`` as its special token.
- ``models/tanganke/gpt2_<task>``: GPT2ForSequenceClassification experts (``transformer.*``
  + ``score.weight``): the base's backbone plus seeded noise, a random score head with
  the task's number of labels, saved with ``save_pretrained`` (safetensors).
- ``datasets/nyu-mll/glue``: the tiny GLUE of :mod:`tests.text_mirror`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from tasks.text.glue import data as glue
from tests.text_mirror import WORDS, write_glue

TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2"]
PAD_TOKEN = "<|endoftext|>"
CONFIG = dict(n_layer=2, n_embd=32, n_head=2, n_positions=512, n_inner=64)


def write_tokenizer(target: Path) -> int:
    """A GPT-2 tokenizer (byte-level BPE, 400 tokens) saved into ``target``; its pad id."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer

    trainer = ByteLevelBPETokenizer()
    texts = [" ".join(WORDS[i:] + WORDS[:i]).capitalize() + "." for i in range(len(WORDS))]
    trainer.train_from_iterator(
        texts, vocab_size=400, min_frequency=1, special_tokens=[PAD_TOKEN], show_progress=False
    )
    with tempfile.TemporaryDirectory() as scratch:
        trainer.save_model(scratch)
        vocab = json.loads((Path(scratch) / "vocab.json").read_text())
        lines = (Path(scratch) / "merges.txt").read_text().splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.save_pretrained(target)
    return vocab[PAD_TOKEN]


def tiny_config(vocab_size: int, pad_id: int, num_labels: int = 2):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size,
        bos_token_id=pad_id,
        eos_token_id=pad_id,
        pad_token_id=pad_id,
        num_labels=num_labels,
        **CONFIG,
    )


def build_gpt2_mirror(
    root: Path,
    tasks: list[str] = TASKS,
    *,
    rows: int = 24,
    labels: dict[str, int] | None = None,
) -> Path:
    """The mirror under ``root``; ``labels`` overrides an expert's number of labels."""
    from transformers import GPT2ForSequenceClassification, GPT2Model

    root = Path(root)
    base_dir = root / "models" / "gpt2"
    pad_id = write_tokenizer(base_dir)
    torch.manual_seed(0)
    base = GPT2Model(tiny_config(400, pad_id)).eval()
    base.save_pretrained(base_dir)
    for index, task in enumerate(tasks):
        count = (labels or {}).get(task, glue.TASKS[task].num_labels)
        torch.manual_seed(100 + index)
        expert = GPT2ForSequenceClassification(tiny_config(400, pad_id, count))
        with torch.no_grad():
            for name, value in base.state_dict().items():
                noise = 0.05 * torch.randn_like(value) if value.is_floating_point() else 0
                expert.transformer.state_dict()[name].copy_(value + noise)
            expert.score.weight.normal_(0.0, 0.5)
        expert.save_pretrained(root / "models" / "tanganke" / f"gpt2_{task}")
    write_glue(root, tasks, rows=rows)
    return root
