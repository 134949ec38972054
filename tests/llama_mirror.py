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


# ---------------------------------------------------------------------------- mirrors
def mgsm_rows(count: int, language: str, train: bool) -> list[dict]:
    """MGSM-format rows: test rows carry only ``answer_number``, train rows the exemplar."""
    rows = []
    for index in range(count):
        a, b = index % 9 + 1, index % 5 + 2
        rows.append(
            {
                "question": f"[{language}] {a} + {b}?",
                "answer": f"Step-by-Step Answer: {a} + {b} = {a + b}. The answer is {a + b}."
                if train
                else None,
                "answer_number": a + b,
                "equation_solution": None,
            }
        )
    return rows


def xnli_rows(count: int, language: str) -> list[dict]:
    return [
        {"premise": f"[{language}] sentence {i}", "hypothesis": f"claim {i % 4}", "label": i % 3}
        for i in range(count)
    ]


def belebele_rows(count: int, code: str) -> list[dict]:
    return [
        {
            "link": f"https://example.org/{i}",
            "question_number": 1,
            "flores_passage": f"[{code}] passage {i}",
            "question": f"question {i}?",
            "mc_answer1": "one",
            "mc_answer2": "two",
            "mc_answer3": "three",
            "mc_answer4": "four",
            "correct_answer_num": str(i % 4 + 1),
            "dialect": code,
            "ds": "2023-05-03",
        }
        for i in range(count)
    ]


def save_model(model, tokenizer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)  # safetensors
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def perturbed(model, seed: int, scale: float = 0.02):
    """A copy of ``model`` moved along a seeded random direction: a stand-in fine-tune."""
    import copy

    import torch

    expert = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in expert.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return expert


def write_llm_datasets(root: Path, languages: tuple[str, ...] = ("fr", "sw")) -> None:
    """GSM8K, MGSM, XNLI and Belebele in their hub layouts under ``root/datasets``."""
    data = root / "datasets"
    # 140 train rows: enough for a training-split validation carve (>= 100 rows)
    write_gsm8k(data / "openai" / "gsm8k" / "main", train=140, test=8)
    flores = {"en": "eng_Latn", "fr": "fra_Latn", "sw": "swh_Latn", "de": "deu_Latn"}
    for language in ("en", *languages):
        mgsm = data / "juletxara" / "mgsm" / language  # the parquet-conversion layout
        for split, rows in (
            ("train", mgsm_rows(8, language, True)),
            ("test", mgsm_rows(20, language, False)),
        ):
            (mgsm / split).mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame(rows).astype({"answer": "string", "equation_solution": "string"})
            frame.to_parquet(mgsm / split / "0000.parquet")  # string columns, as the hub's
        xnli = data / "facebook" / "xnli" / language
        xnli.mkdir(parents=True, exist_ok=True)
        for split, count in (("train", 150), ("validation", 12), ("test", 12)):
            pd.DataFrame(xnli_rows(count, language)).to_parquet(
                xnli / f"{split}-00000-of-00001.parquet"
            )
        belebele = data / "facebook" / "belebele" / "data"
        belebele.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(belebele_rows(20, flores[language])).to_json(
            belebele / f"{flores[language]}.jsonl", orient="records", lines=True
        )


def build_llm_mirror(
    root: Path,
    base: str = "meta-llama/Llama-3.2-3B",
    experts: dict[str, int] | None = None,
    languages: tuple[str, ...] = ("fr", "sw"),
) -> Path:
    """A mirror of tiny Llamas: the base and stand-in experts (hub id → seed), each with
    the base's tokenizer files, plus the LLM suites' datasets."""
    experts = experts or {
        f"MergeBench/Llama-3.2-3B_{skill}": seed
        for seed, skill in enumerate(
            ("instruction", "math", "coding", "safety", "multilingual"), start=1
        )
    }
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    save_model(model, tokenizer, root / "models" / base)
    for repo, seed in experts.items():
        save_model(perturbed(model, seed), tokenizer, root / "models" / repo)
    write_llm_datasets(root, languages)
    return root
