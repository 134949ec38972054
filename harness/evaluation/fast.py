"""Fast classification accuracy over a tensor store.

The plain loop (PIL decode, fp32, batch 128) is bound by the host. Here the images are
already decoded uint8 in a memory map; a reader thread copies the next batches into pinned
buffers while the device computes, the host-to-device copy runs on its own CUDA stream,
normalisation happens on the device, and the forward pass runs under bf16/fp16 autocast
with large batches. Correct counts stay on the device until the end (one sync per task).
On CPU the same code runs synchronously in float32 (or the dtype asked for).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from harness.evaluation.tensor_store import Preprocess, TensorStore

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 on CUDA (fp16 where bf16 is unsupported) and fp32 elsewhere."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return DTYPES[name]


def default_batch_size(device: torch.device) -> int:
    return 1024 if device.type == "cuda" else 256


@dataclass
class _Slot:
    index: int
    start: int
    stop: int


class DeviceFeeder:
    """Yield (normalised images, labels) on ``device`` for rows [0, total) of a store.

    CUDA: a reader thread fills ``depth`` pinned host buffers; each batch is copied with
    ``non_blocking=True`` on a side stream one step ahead of the compute, so copy and
    compute overlap. CPU: plain slices of the memory map.
    """

    def __init__(
        self,
        store: TensorStore,
        preprocess: Preprocess,
        device: torch.device,
        *,
        batch_size: int,
        limit: int | None = None,
        depth: int = 3,
    ) -> None:
        self.store = store
        self.preprocess = preprocess
        self.device = device
        self.batch_size = batch_size
        self.total = len(store) if limit is None else min(limit, len(store))
        self.depth = depth

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.device.type == "cuda":
            yield from self._cuda()
        else:
            yield from self._host()

    def _host(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        scale, shift = self.preprocess.normalizer(self.device)
        for start in range(0, self.total, self.batch_size):
            images, labels = self.store.tensors(start, min(start + self.batch_size, self.total))
            images = images.to(self.device).float().mul_(scale).add_(shift)
            yield images, labels.to(self.device)

    def _cuda(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.store.size
        rows = min(self.batch_size, max(self.total, 1))
        pinned = [
            torch.empty((rows, 3, size, size), dtype=torch.uint8).pin_memory()
            for _ in range(self.depth)
        ]
        host = [buffer.numpy() for buffer in pinned]  # numpy views of the pinned memory
        labels_all = torch.from_numpy(self.store.labels[: self.total].copy()).to(self.device)
        free: queue.Queue[int] = queue.Queue()
        ready: queue.Queue[_Slot | BaseException | None] = queue.Queue()
        for index in range(self.depth):
            free.put(index)
        stop_flag = threading.Event()

        def reader() -> None:
            try:
                for start in range(0, self.total, self.batch_size):
                    index = free.get()
                    if stop_flag.is_set():
                        return
                    stop = min(start + self.batch_size, self.total)
                    np.copyto(host[index][: stop - start], self.store.images[start:stop])
                    ready.put(_Slot(index, start, stop))
                ready.put(None)
            except BaseException as error:  # surfaced in the consumer
                ready.put(error)

        thread = threading.Thread(target=reader, name="tensor-store-reader", daemon=True)
        thread.start()
        copy_stream = torch.cuda.Stream(self.device)
        compute_stream = torch.cuda.current_stream(self.device)
        scale, shift = self.preprocess.normalizer(self.device)

        def issue() -> tuple[_Slot, torch.Tensor, torch.cuda.Event] | None:
            item = ready.get()
            if item is None:
                return None
            if isinstance(item, BaseException):
                raise item
            with torch.cuda.stream(copy_stream):
                on_device = pinned[item.index][: item.stop - item.start].to(
                    self.device, non_blocking=True
                )
                event = torch.cuda.Event()
                event.record(copy_stream)
            return item, on_device, event

        try:
            upcoming = issue()
            while upcoming is not None:
                slot, raw, event = upcoming
                upcoming = issue()  # next copy starts before this batch computes
                compute_stream.wait_event(event)
                raw.record_stream(compute_stream)
                images = raw.float().mul_(scale).add_(shift)
                yield images, labels_all[slot.start : slot.stop]
                event.synchronize()  # the copy finished long ago; its buffer is free again
                free.put(slot.index)
        finally:
            stop_flag.set()
            for index in range(self.depth):
                free.put(index)
            thread.join(timeout=5)


@torch.no_grad()
def fast_accuracy(
    backbone: torch.nn.Module,
    head: torch.nn.Module,
    store: TensorStore,
    preprocess: Preprocess,
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    batch_size: int | None = None,
    limit: int | None = None,
) -> dict[str, float]:
    """Top-1 accuracy (percent) of ``head(backbone(x))`` over a store."""
    backbone.eval()
    head = head.to(device).eval()
    feeder = DeviceFeeder(
        store,
        preprocess,
        device,
        batch_size=batch_size or default_batch_size(device),
        limit=limit,
    )
    if feeder.total == 0:
        raise RuntimeError("the split has no examples")
    correct = torch.zeros((), dtype=torch.int64, device=device)
    autocast = dtype != torch.float32
    for images, labels in feeder:
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            logits = head(backbone(images))
        correct += (logits.argmax(dim=-1) == labels).sum()
    return {"accuracy": 100.0 * int(correct) / feeder.total, "n": float(feeder.total)}
