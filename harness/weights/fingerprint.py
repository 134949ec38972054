"""A fingerprint of a model's weights in memory, to key caches of what it generates.

A merged model has no file and no hub id; what identifies it is its weights. Hashing every
byte of an 8B model takes tens of seconds, so each tensor contributes its name, shape,
dtype, its float64 sum and norm, and a fixed strided sample of up to 4,096 of
its entries: two merges that differ anywhere change a sum or a sampled entry except by
an astronomically unlikely coincidence.
"""

from __future__ import annotations

import hashlib

import torch

SAMPLE = 4096


@torch.no_grad()
def module_fingerprint(module: torch.nn.Module) -> str:
    """A hex digest of ``module``'s parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        flat = tensor.reshape(-1)
        step = max(1, flat.numel() // SAMPLE)
        sample = flat[::step][:SAMPLE].to("cpu", torch.float64)
        if not flat.is_floating_point():
            flat = flat.to(torch.float64)
        total = torch.sum(flat, dtype=torch.float64)
        norm = torch.linalg.vector_norm(flat, dtype=torch.float64)
        sums = torch.stack([total, norm]).cpu()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(sums.numpy().tobytes())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:24]
