"""Tiny causal LMs of the real Llama architecture and GSM8K-format parquet, for tests.

The tokenizer is a real byte-level BPE (``tokenizers``) wrapped as transformers'
``PreTrainedTokenizerFast``; models are ``LlamaForCausalLM`` saved with
``save_pretrained``, so the loading and scoring code under test is the code users run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

EOS = "<|endoftext|>"


def gsm8k_rows(count: int, offset: int = 0) -> list[dict[str, str]]:
    """GSM8K-format items (question, answer ending in ``#### N``) with exact answers."""
    rows = []
    for index in range(offset, offset + count):
        a, b = index % 9 + 1, index % 7 + 2
        rows.append(
            {
                "question": f"Tom has {a} apples and buys {b} more. How many apples has he?",
                "answer": f"He has {a} + {b} = {a + b} apples.\n#### {a + b}",
            }
        )
    return rows


def write_gsm8k(directory: Path, train: int = 12, test: int = 8) -> dict[str, str]:
    """``openai/gsm8k`` main as parquet (the mirror's layout); split → file."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in (("train", gsm8k_rows(train)), ("test", gsm8k_rows(test, train))):
        path = directory / f"{split}-00000-of-00001.parquet"
        pd.DataFrame(rows).to_parquet(path)
        files[split] = str(path)
    return files


def tiny_tokenizer(texts: list[str] | None = None, vocab_size: int = 320):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = texts or [r["question"] + " " + r["answer"] for r in gsm8k_rows(40)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus + ["Question: Answer: The answer is"], vocab_size=vocab_size, special_tokens=[EOS]
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, bos_token=EOS)


def tiny_llama(tokenizer, seed: int = 0, layers: int = 2, hidden: int = 32):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()
