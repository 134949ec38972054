"""Singular-value helpers for methods that merge 2-D weight matrices in their spectral
basis (TSV-M, ISO-C / ISO-CTS, PERU-LoRA).

The papers apply SVD to 2-D weight matrices only; other tensors (biases, norms,
convolution kernels, position embeddings stored as 1-D/3-D) fall back to a plain rule
chosen by the method. SVDs run in float32 on the tensor's own device.
"""

from __future__ import annotations

import torch


def is_matrix(tensor: torch.Tensor) -> bool:
    """True for the 2-D weights that spectral methods decompose."""
    return tensor.ndim == 2 and min(tensor.shape) > 1


def svd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD: matrix = U diag(S) Vh, singular values descending."""
    return torch.linalg.svd(matrix.float(), full_matrices=False)


def truncated(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The top-``rank`` singular triplets (rank clipped to the matrix's)."""
    u, s, vh = svd(matrix)
    rank = max(0, min(rank, s.numel()))
    return u[:, :rank], s[:rank], vh[:rank]


def low_rank(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The best rank-``rank`` approximation (Eckart–Young)."""
    u, s, vh = truncated(matrix, rank)
    return (u * s) @ vh


def orthogonalize(matrix: torch.Tensor) -> torch.Tensor:
    """The nearest matrix with orthonormal columns (polar factor, P Qᵀ of M = P S Qᵀ):
    TSV-M's and ISO-CTS's whitening of concatenated singular vectors."""
    p, _, qh = svd(matrix)
    return p @ qh
