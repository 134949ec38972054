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
    """Thin SVD: matrix = U diag(S) Vh, singular values descending.

    In float32, and in float64 where float32 fails: LAPACK's float32 divide and conquer
    (MKL's, on the CPU) does not converge on some nearly singular matrices, such as
    ISO-CTS's 4096 × 4096 [U_cm, U_1 … U_T] at Llama-3.1-8B's attention shapes (smallest
    singular value 2·10⁻⁴ of the largest; MKL prints a SLASCL parameter error before
    failing), which float64 decomposes.

    A wide matrix is decomposed on the CPU as its transpose (A = U S Vᵀ ⇔ Aᵀ = V S Uᵀ):
    LAPACK's CPU SVD of a 2,048 × 8,192 matrix (Llama's MLP down projection) took 5.3 s
    on 2 cores against 1.9 s for the 8,192 × 2,048 transpose. The factors agree up to
    rounding and the signs of singular pairs, which every method here is invariant to."""
    if matrix.device.type == "cpu" and matrix.shape[-2] < matrix.shape[-1]:
        u, s, vh = svd(matrix.mT)
        return vh.mT, s, u.mT
    try:
        return torch.linalg.svd(matrix.float(), full_matrices=False)
    except torch.linalg.LinAlgError:
        u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
        return u.float(), s.float(), vh.float()


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


def gram(matrix: torch.Tensor) -> torch.Tensor:
    """MᵀM in float64 (from a float32 product): it adds up over row slices of M, so the
    right singular vectors and singular values of a matrix too large to hold whole (an
    LLM's vocabulary-sized embedding or head) come from one streaming pass."""
    flat = matrix.float()
    return (flat.T @ flat).double()


class GramSpectrum:
    """The spectrum of M from its Gram matrix G = MᵀM = V diag(S²) Vᵀ.

    ``isotropic_map()`` is V diag(1/S) Vᵀ, so that M · it = U Vᵀ (the polar factor of M)
    one row slice at a time. Directions with S below ``1e-6 · S_max`` (numerically absent
    from M) are left out; a thin SVD would give them arbitrary singular vectors.
    """

    def __init__(self, gram_matrix: torch.Tensor) -> None:
        eigenvalues, vectors = torch.linalg.eigh(gram_matrix)
        values = eigenvalues.clamp(min=0).sqrt().flip(0)  # descending, as torch.linalg.svd
        self.singular_values = values
        self.vectors = vectors.flip(1)
        self.kept = values > values[0] * 1e-6 if values.numel() else values > 0

    def isotropic_map(self) -> torch.Tensor:
        v = self.vectors[:, self.kept]
        return ((v / self.singular_values[self.kept]) @ v.T).float()


_LAST: list[tuple[torch.Tensor, GramSpectrum]] = []


def spectrum_of(gram_matrix: torch.Tensor) -> GramSpectrum:
    """``GramSpectrum(gram_matrix)``, decomposed once while the row slices of one huge
    matrix ask for it again with the same statistic tensor."""
    if not _LAST or _LAST[0][0] is not gram_matrix:
        _LAST[:] = [(gram_matrix, GramSpectrum(gram_matrix))]
    return _LAST[0][1]
