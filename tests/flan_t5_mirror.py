"""A tiny glue-flan-t5 mirror: real architectures and formats at toy sizes.

- ``models/google/flan-t5-base``: a T5ForConditionalGeneration with Flan-T5's layout
  (gated-gelu feed-forward, untied ``lm_head``, ``tie_word_embeddings: false``) and a real
  unigram (sentencepiece-style) T5 tokenizer built with ``tokenizers``, whose vocabulary
  holds the prompt words, label words (some split into several pieces, as "unacceptable"
  and "entailment" are in Flan-T5) and digits;
- ``models/tanganke/flan-t5-base_glue-<task>``: full experts, the base plus seeded noise;
- ``models/tanganke/flan-t5-base_glue-<task>_lora-16``: peft LoRA adapters (rank 4 for
  speed) saved with ``PeftModel.save_pretrained``, naming the base in adapter_config.json;
- ``datasets/nyu-mll/glue``: tests/text_mirror.py's tiny GLUE.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import torch

from tasks.text.glue import prompts
from tests.text_mirror import WORDS, write_glue

BASE = "google/flan-t5-base"
LORA_RANK = 4
LORA_ALPHA = 8


def tiny_tokenizer():
    """A T5 tokenizer (unigram model, metaspace, ``</s>`` appended) over a small vocabulary."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import T5TokenizerFast

    words = set(WORDS)
    for template in prompts.TEMPLATES.values():
        words |= set(re.findall(r"[A-Za-z]+", template))
    split = {"unacceptable": ("▁un", "accept", "able"), "entailment": ("▁en", "tail", "ment")}
    for labels in prompts.LABEL_WORDS.values():
        words |= {word for word in labels if word not in split}
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(f"▁{word}", -2.0) for word in sorted(words)]
    vocab += [(f"▁{word.lower()}", -2.5) for word in sorted(words) if word.lower() not in words]
    vocab += [(piece, -3.0) for pieces in split.values() for piece in pieces]
    vocab += [(f"▁{digit}", -3.0) for digit in string.digits]
    known = {piece for piece, _ in vocab}
    vocab += [(c, -6.0) for c in string.ascii_letters + string.digits + string.punctuation]
    vocab += [(f"▁{c}", -5.0) for c in string.punctuation if f"▁{c}" not in known]
    vocab += [("▁", -8.0)]
    vocab = list(dict(reversed(vocab)).items())[::-1]  # first occurrence of a piece wins
    model = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    model.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    model.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    model.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    model.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return T5TokenizerFast(
        tokenizer_object=model, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_ids=0,
    )  # fmt: skip


def tiny_config(vocab_size: int, d_model: int = 16):
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=32, num_layers=2,
        num_decoder_layers=2, num_heads=2, relative_attention_num_buckets=8,
        relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1,
    )  # fmt: skip


def save_t5(model, directory: Path) -> None:
    """save_pretrained, with Flan-T5's untied lm_head stored and said in config.json."""
    model.save_pretrained(directory)
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text())
    config["tie_word_embeddings"] = False
    config_file.write_text(json.dumps(config, indent=2))


def tiny_base(vocab_size: int, seed: int = 0, d_model: int = 16):
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(tiny_config(vocab_size, d_model))
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.5)
    return model.eval()


def build_mirror(
    root: Path,
    tasks: list[str],
    *,
    lora: bool = False,
    full: bool = True,
    rows: int = 24,
    base_id: str = BASE,
) -> Path:
    """Write base, experts (full and/or LoRA) and GLUE for ``tasks`` under ``root``."""
    from transformers import T5ForConditionalGeneration

    root = Path(root)
    write_glue(root, tasks, rows=rows)
    tokenizer = tiny_tokenizer()
    vocab_size = (len(tokenizer) + 7) // 8 * 8
    base_dir = root / "models" / base_id
    save_t5(tiny_base(vocab_size), base_dir)
    tokenizer.save_pretrained(base_dir)
    for index, task in enumerate(tasks):
        if full:
            expert = T5ForConditionalGeneration.from_pretrained(base_dir)
            generator = torch.Generator().manual_seed(100 + index)
            with torch.no_grad():
                for parameter in expert.parameters():
                    noise = torch.randn(parameter.shape, generator=generator)
                    parameter.add_(0.1 * noise * parameter.std())
            save_t5(expert, root / "models" / "tanganke" / f"flan-t5-base_glue-{task}")
        if lora:
            save_lora(base_dir, root / "models" / "tanganke" / f"flan-t5-base_glue-{task}_lora-16",
                      seed=200 + index, base_id=base_id)  # fmt: skip
    return root


def save_lora(base_dir: Path, directory: Path, *, seed: int, base_id: str = BASE) -> None:
    """A peft LoRA adapter on q and v with random A and B (so the merge is not a no-op)."""
    from peft import LoraConfig, get_peft_model
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(seed)
    base = T5ForConditionalGeneration.from_pretrained(base_dir)
    base.config.name_or_path = base_id
    config = LoraConfig(
        r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=["q", "v"],
        task_type="SEQ_2_SEQ_LM", init_lora_weights=False,
    )  # fmt: skip
    model = get_peft_model(base, config)
    model.peft_config["default"].base_model_name_or_path = base_id
    model.save_pretrained(directory, save_embedding_layers=False)
