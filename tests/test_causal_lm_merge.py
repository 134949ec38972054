"""Data-free methods on a causal LM, not only on vision towers: a tiny bf16 Llama pool in
the real architecture and file format (``save_pretrained``), with its embedding and LM
head above the pool's slice size so row-wise merges stream them in row slices."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.bench.merge import NeedsData, data_free_context
from harness.registry import METHODS
from harness.weights.pool import Checkpoint, ExpertPool

CONFIG = dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    vocab_size=64,
)
TASKS = ["code", "math", "chat"]


@pytest.fixture(scope="module")
def llama_pool(tmp_path_factory) -> ExpertPool:
    root = tmp_path_factory.mktemp("llama-pool")
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**CONFIG)).to(torch.bfloat16)
    base.save_pretrained(root / "base")
    for index, task in enumerate(TASKS):
        generator = torch.Generator().manual_seed(index + 1)
        expert = LlamaForCausalLM(LlamaConfig(**CONFIG)).to(torch.bfloat16)
        expert.load_state_dict(base.state_dict())
        with torch.no_grad():
            for parameter in expert.parameters():
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.add_((0.01 * noise).to(parameter.dtype))
        expert.save_pretrained(root / task)
    experts = {task: Checkpoint(root / task, f"tiny-llama/{task}") for task in TASKS}
    # 64×16 embedding and head: 1,024 entries, streamed in 6-row slices by row-wise merges
    return ExpertPool(Checkpoint(root / "base", "tiny-llama/base"), experts, chunk_elements=100)


@pytest.mark.parametrize("name", METHODS.names())
def test_data_free_method_merges_a_causal_lm(name, llama_pool):
    entry = METHODS.get(name)
    pool = llama_pool if entry.experts is None else llama_pool.subset(TASKS[: entry.experts])
    context = data_free_context(pool, torch.device("cpu"))
    try:
        solution = entry.obj(context, **entry.resolve_params(entry.smoke))
        if solution.state is not None:
            state = solution.state
        elif solution.task_states is not None:
            state = solution.task_states(pool.tasks[0])
        else:
            pytest.skip(f"{name} serves per-task modules built from the suite")
    except NeedsData as error:  # the declaration must say so, or the runner cannot refuse
        assert entry.needs, f"{name} reads {error} from the suite but declares no needs="
        pytest.skip(f"{name} needs data ({error})")
    assert not entry.needs, f"{name} declares needs={entry.needs} but ran without a suite"

    base = pool.base.state_dict()
    assert list(state) == list(base), f"{name}: tensor names differ from the base"
    for key, tensor in state.items():
        assert tensor.shape == base[key].shape and tensor.dtype == base[key].dtype, key
        assert torch.isfinite(tensor.float()).all(), f"{name}: {key} has NaN/inf"
    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).to(torch.bfloat16)
    model.load_state_dict(dict(state), strict=True)
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, CONFIG["vocab_size"]) and torch.isfinite(logits.float()).all()


def test_the_causal_lm_check_covers_the_data_free_methods(llama_pool):
    """Guard against the test above skipping everything: these must run without data."""
    for name in ["task_arithmetic", "ties", "dare_ties", "tall_masks", "tsv"]:
        entry = METHODS.get(name)
        entry.obj(data_free_context(llama_pool, torch.device("cpu")), **entry.defaults)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_row_sliced_merge_on_cuda_matches_cpu(llama_pool):
    """Slices are read on the CPU and moved; the merged weights equal the CPU merge."""
    cuda_pool = ExpertPool(llama_pool.base, llama_pool.experts, device="cuda", chunk_elements=100)
    for name in ["task_arithmetic", "ties", "tall_masks"]:
        entry = METHODS.get(name)
        results = []
        for pool, device in [(llama_pool, "cpu"), (cuda_pool, "cuda")]:
            solution = entry.obj(data_free_context(pool, torch.device(device)), **entry.defaults)
            state = solution.state or solution.task_states(TASKS[0])
            assert all(t.device.type == device for t in state.values() if t.is_floating_point())
            results.append(state)
        for key, tensor in results[0].items():
            torch.testing.assert_close(results[1][key].cpu(), tensor, rtol=1e-2, atol=1e-3)
