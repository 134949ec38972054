"""Element-wise passes in cache-sized chunks with reused scratch buffers.

On the CPU an element-wise op on a large tensor costs more in fresh memory than in
arithmetic: each new multi-megabyte result is mapped and zeroed page by page (about
3 ns per float32 against 0.4 ns for the subtraction itself, measured on the 2-core
bench machine). The hot passes of the streaming merges (task vectors, top-k histograms,
TIES' elect-and-mean) therefore walk each tensor in flat chunks of ``CHUNK`` entries,
writing into ``Scratch`` buffers that are allocated once and reused. On a GPU there is
nothing to gain and launches cost more, so a CUDA tensor is one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

CHUNK = 1 << 18  # 1 MiB per float32 buffer: a few buffers stay in the CPU's caches


def spans(tensor: torch.Tensor, size: int | None = None) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` ranges of ``size`` (default ``CHUNK``) entries covering
    ``tensor.numel()`` (one range on a GPU)."""
    size = size or CHUNK
    count = tensor.numel()
    if tensor.device.type != "cpu":
        size = max(count, 1)
    for start in range(0, count, size):
        yield start, min(start + size, count)


class Scratch:
    """Named buffers, grown when a larger one is asked for and otherwise reused."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(
        self, key: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        count = 1
        for size in shape:
            count *= size
        buffer = self._buffers.get(key)
        if (
            buffer is None
            or buffer.numel() < count
            or buffer.dtype != dtype
            or buffer.device != device
        ):
            buffer = torch.empty(count, dtype=dtype, device=device)
            self._buffers[key] = buffer
        return buffer[:count].view(shape)
