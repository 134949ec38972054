"""Score a merged causal LM with lm-eval's vLLM backend (``--suite-set backend=vllm``).

vLLM loads weights from a directory, not from a Python object, so the merged model and its
tokenizer are written with ``save_pretrained`` (safetensors) into a temporary directory that
lives only while lm-eval's ``VLLM`` model is scoring, and is removed afterwards, whatever
happens. Everything else (task configs pointed at the mirror, seeds, filters, the record's
details) is the in-memory HF path's own (:func:`harness.evaluation.lm_harness.score_lm`).

vLLM is an optional extra (``pip install -e '.[vllm]'``) that needs a CUDA GPU; HF in
memory is the default and what CI tests.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from harness.evaluation.lm_harness import (
    LmEvalError,
    LmScore,
    LmTask,
    require_chat_template,
    require_lm_eval,
    score_lm,
    task_config,
)

#: Fraction of GPU memory vLLM may take (its default 0.9 leaves too little for the merge).
GPU_MEMORY_UTILIZATION = 0.8


def require_vllm() -> None:
    """One line when vLLM is not installed (the default HF backend needs nothing)."""
    if importlib.util.find_spec("vllm") is None:
        raise LmEvalError(
            "backend=vllm needs vLLM, which is not installed: pip install -e '.[vllm]' on a "
            "machine with a CUDA GPU, or use the default backend=hf"
        )


@contextlib.contextmanager
def saved_model(
    model: torch.nn.Module, tokenizer: Any, *, parent: Path | None = None
) -> Iterator[Path]:
    """``model`` and ``tokenizer`` saved (safetensors) into a temporary directory that is
    removed when the block ends, even on error. ``parent``: where (an 8B model is 16 GB in
    bf16; ``/tmp`` may be memory)."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harness-vllm-", dir=parent) as folder:
        path = Path(folder)
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
        yield path


def score_vllm(
    model: torch.nn.Module,
    tokenizer: Any,
    tasks: Sequence[LmTask],
    *,
    limit: int | None = None,
    seed: int = 0,
    samples_dir: Path | None = None,
    max_length: int | None = None,
    apply_chat_template: bool = False,
    dtype: str = "auto",
    parent: Path | None = None,
) -> dict[str, LmScore]:
    """Score ``model`` with vLLM through lm-eval: the same tasks, seeds and details as
    :func:`harness.evaluation.lm_harness.score`, from a temporary safetensors copy."""
    require_lm_eval()
    require_vllm()
    configs = [task_config(task) for task in tasks]  # bad tasks fail before any copy
    if apply_chat_template:
        require_chat_template(tokenizer, [task.name for task in tasks])
    from lm_eval.models.vllm_causallms import VLLM

    device = next(model.parameters()).device
    with saved_model(model, tokenizer, parent=parent) as folder:
        # vLLM reserves a fixed share of the GPU: the HF copy waits on the CPU meanwhile
        model.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        lm = None
        try:
            lm = VLLM(
                pretrained=str(folder),
                tokenizer=str(folder),
                dtype=dtype,
                seed=seed,
                batch_size="auto",
                max_model_len=max_length,
                trust_remote_code=False,
                gpu_memory_utilization=GPU_MEMORY_UTILIZATION,
            )
            return score_lm(
                lm,
                tasks,
                configs,
                limit=limit,
                seed=seed,
                samples_dir=samples_dir,
                apply_chat_template=apply_chat_template,
                backend="vllm",
            )
        finally:
            del lm  # vLLM keeps its GPU memory until the engine is collected
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            model.to(device)
