"""CLIP zero-shot classification heads: class names × prompt templates → class embeddings.

As in the task-arithmetic protocol: every template is filled with the class name and
encoded by the *pretrained* text encoder; the embeddings are L2-normalised, averaged over
templates and normalised again. Heads depend only on the text encoder and the prompts, so
they are cached on disk (safetensors) and shared by every method and hyperparameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from harness.cache import atomic_path, cache_dir, content_key

TextEncoder = Callable[[list[str]], torch.Tensor]


class ZeroShotHead(torch.nn.Module):
    """features → logits: ``logit_scale · normalise(features) @ class_embeddings.T``.

    The scale matters to entropy-based methods (AdaMerging), not to accuracy.
    """

    def __init__(self, weights: torch.Tensor, logit_scale: float = 100.0) -> None:
        super().__init__()
        self.register_buffer("weight", weights.float().clone())
        self.logit_scale = float(logit_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = torch.nn.functional.normalize(features, dim=-1)
        return self.logit_scale * features @ self.weight.to(features.dtype).T


def fill_template(template: str, classname: str) -> str:
    return template.replace("{}", classname)


@torch.no_grad()
def zeroshot_weights(
    encode: TextEncoder, classnames: Sequence[str], templates: Sequence[str], chunk: int = 1024
) -> torch.Tensor:
    """[classes, dim]: per class, the normalised mean of normalised template embeddings."""
    texts = [fill_template(t, classname) for classname in classnames for t in templates]
    parts = [encode(texts[i : i + chunk]).float().cpu() for i in range(0, len(texts), chunk)]
    embeddings = torch.nn.functional.normalize(torch.cat(parts), dim=-1)
    embeddings = embeddings.view(len(classnames), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(embeddings, dim=-1)


def cached_head_weights(
    identity: object,
    classnames: Sequence[str],
    templates: Sequence[str],
    encode_factory: Callable[[], TextEncoder],
) -> torch.Tensor:
    """Head weights from the cache, computed (loading the text encoder) only when absent.

    ``identity`` names the text encoder (hub id + revision or content hash).
    """
    key = content_key("zeroshot-head", identity, list(classnames), list(templates))
    path: Path = cache_dir() / "zeroshot-heads" / f"{key}.safetensors"
    if path.is_file():
        try:
            return load_file(str(path))["weight"]
        except Exception:  # damaged entry: rebuild it
            path.unlink(missing_ok=True)
    weights = zeroshot_weights(encode_factory(), classnames, templates)
    with atomic_path(path) as temporary:
        save_file({"weight": weights.contiguous()}, str(temporary))
    return weights
