"""Fast and bounded merging: the per-pass breakdown, the llama-8b bench shapes, chunked
TIES, and whole-tensor statistics gathered over row slices of huge matrices."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import harness.bench.merge as bench
import harness.merging.chunks as chunks
import harness.merging.sparsify as sparsify
from harness.bench.merge import data_free_context
from harness.errors import HarnessError
from harness.merging import kernels, timing
from harness.merging.sparsify import magprune
from harness.merging.stream import summed_task_vectors
from harness.merging.task_vectors import keep_top_magnitudes, magnitude_thresholds
from harness.registry import METHODS
from harness.weights.pool import Checkpoint, ExpertPool, TensorGroup
from methods.merging.consensus import consensus
from methods.merging.dare_ta import dare_ta, dare_vectors
from methods.merging.della import della
from methods.merging.emr import (
    emr,
    emr_masks,
    group_rescaler_sums,
    rescaler_sums,
    rescalers,
    unified_task_vector,
)
from methods.merging.iso_cts import iso_cts_matrix, sliced_iso_cts, subspace_sizes
from methods.merging.magmax import magmax, max_magnitude
from methods.merging.tall_masks import tall_masks, tall_masks_method
from methods.merging.ties import elect_and_disjoint_mean, trimmed_disjoint_merge


def test_timed_sections_count_each_second_once():
    timing.reset()
    with timing.timed("statistics"):
        with timing.timed("read"):
            sum(range(200_000))
        sum(range(200_000))
    totals = timing.totals()
    assert totals["read"] > 0 and totals["statistics"] > 0
    timing.reset()
    assert set(timing.totals().values()) == {0.0}


def test_llama_8b_shapes_are_the_real_ones_and_blocks_change_only_depth():
    one = bench.architecture_shapes("llama-8b")
    assert bench.built_blocks("llama-8b") == 1 and bench.ARCHS["llama-8b"].blocks == 32
    expected = {
        "model.embed_tokens.weight": (128256, 4096),
        "lm_head.weight": (128256, 4096),  # untied: stored separately
        "model.layers.0.self_attn.q_proj.weight": (4096, 4096),
        "model.layers.0.self_attn.k_proj.weight": (1024, 4096),  # 8 KV heads of 128
        "model.layers.0.self_attn.v_proj.weight": (1024, 4096),
        "model.layers.0.self_attn.o_proj.weight": (4096, 4096),
        "model.layers.0.mlp.gate_proj.weight": (14336, 4096),
        "model.layers.0.mlp.up_proj.weight": (14336, 4096),
        "model.layers.0.mlp.down_proj.weight": (4096, 14336),
        "model.layers.0.input_layernorm.weight": (4096,),
        "model.layers.0.post_attention_layernorm.weight": (4096,),
        "model.norm.weight": (4096,),
    }
    assert {name: shape for name, (shape, _) in one.items()} == expected
    assert {dtype for _, dtype in one.values()} == {torch.bfloat16}
    three = bench.architecture_shapes("llama-8b", 3)
    layer = {n.replace("layers.0.", "layers.{}."): s for n, s in one.items() if "layers.0." in n}
    assert three == {
        **{n: s for n, s in one.items() if "layers." not in n},
        **{n.format(i): s for n, s in layer.items() for i in range(3)},
    }
    with pytest.raises(HarnessError, match="--blocks must be between 1 and 32"):
        bench.architecture_shapes("llama-8b", 33)


def test_bench_reports_passes_that_add_up_and_a_bad_fusionbench_python(monkeypatch):
    arch = bench.Architecture(bench._vit(16, 1, 2, 16), torch.float32, 1, 1)
    monkeypatch.setitem(bench.ARCHS, "tiny-vit", arch)
    run = bench.bench_merge(["ties"], "tiny-vit", 2)
    described = json.loads(json.dumps(bench.describe(run)))
    row = described["rows"][0]
    assert set(row["passes"]) == set(timing.PASSES)
    assert all(seconds >= 0 for seconds in row["passes"].values())
    assert row["passes"]["read"] > 0 and row["passes"]["statistics"] > 0
    assert row["passes"]["merge"] > 0
    assert sum(row["passes"].values()) <= row["seconds"] * 1.01 + 1e-3
    assert described["blocks"] == 1 and described["total_blocks"] == 1
    lines = bench.format_table(run, 1)
    assert lines[0].split()[4:10] == ["CPU", "s", *timing.PASSES]
    assert row["cpu_seconds"] > 0
    assert "1 of its 1 blocks built" in lines[-1]

    from harness.cli import cli

    result = CliRunner().invoke(
        cli,
        ["bench", "merge", "--methods", "ties", "--compare-fusionbench", "/no/such/python"],
    )
    assert result.exit_code != 0
    assert "no such Python" in str(result.exception or result.output)


def _bf16_pool(tmp_path, experts: int, **limits) -> ExpertPool:
    """Experts whose bf16 task vectors have many exact ties (and zeros)."""
    generator = torch.Generator().manual_seed(0)
    base = {
        "w": (0.02 * torch.randn(50, 30, generator=generator)).bfloat16(),
        "b": torch.randn(30, generator=generator).bfloat16(),
    }
    save_file(base, str(tmp_path / "m0.safetensors"))
    for index in range(1, experts + 1):
        state = {
            key: (value.float() + 1e-2 * torch.randn(value.shape, generator=generator)).bfloat16()
            for key, value in base.items()
        }
        save_file(state, str(tmp_path / f"m{index}.safetensors"))
    checkpoints = {
        f"t{i}": Checkpoint(tmp_path / f"m{i}.safetensors", f"e{i}") for i in range(1, experts + 1)
    }
    return ExpertPool(Checkpoint(tmp_path / "m0.safetensors", "base"), checkpoints, **limits)


def _merge(pool: ExpertPool, name: str, **hyperparameters) -> dict[str, torch.Tensor]:
    entry = METHODS.get(name)
    context = data_free_context(pool, torch.device("cpu"))
    return entry.obj(context, **{**entry.defaults, **hyperparameters}).state


@pytest.mark.parametrize(
    ("name", "experts", "hyperparameters"),
    [
        ("breadcrumbs", 3, {}),
        ("breadcrumbs", 3, {"bottom": 0.3, "top": 0.2}),
        ("breadcrumbs", 2, {"bottom": 0.0, "top": 0.0}),
        ("model_stock", 3, {}),
        ("slerp", 2, {}),
        ("iso_c", 3, {}),
        ("tsv", 3, {}),
        ("pcb", 3, {}),
        ("iso_cts", 3, {}),
        ("iso_cts", 2, {"common": 0.5}),
        ("pcb", 2, {"ratio": 0.5}),
    ],
)
def test_huge_matrix_in_row_slices_gives_the_whole_tensor_merge(
    tmp_path, name, experts, hyperparameters
):
    """A matrix above ``whole_elements`` is never loaded whole; its statistic (order
    statistics, inner products, a Gram matrix) is gathered over row slices smaller than
    the matrix, and the merged weights are those of the whole-tensor merge."""
    whole = _merge(_bf16_pool(tmp_path, experts), name, **hyperparameters)
    pool = _bf16_pool(tmp_path, experts, whole_elements=100, chunk_elements=200)
    assert pool.is_huge("w") and len(pool.pieces("w", rowwise=True)) == 9
    sliced = _merge(pool, name, **hyperparameters)
    for key, tensor in whole.items():
        if name in ("iso_c", "tsv", "iso_cts"):  # a Gram route to the same spectrum: float rounding
            # (a bf16 step or two; the updates themselves reach about 0.05)
            torch.testing.assert_close(sliced[key].float(), tensor.float(), rtol=0, atol=2e-4)
        else:
            assert torch.equal(sliced[key], tensor), f"{name}: {key} differs when sliced"


def _iso_cts_float64(vectors: list[torch.Tensor], common: float) -> torch.Tensor:
    """The paper's update σ̄ U* V*ᵀ in float64 on the whole matrix (the reference)."""

    def polar(matrix: torch.Tensor) -> torch.Tensor:
        left, _, right = torch.linalg.svd(matrix, full_matrices=False)
        return left @ right

    k, per_task = subspace_sizes(min(vectors[0].shape), len(vectors), common)
    u, s, vh = torch.linalg.svd(sum(vectors), full_matrices=False)
    us, ss, vs = [u[:, :k]], [s[:k]], [vh[:k].T]
    for vector in vectors:
        u_t, s_t, vh_t = torch.linalg.svd(vector - us[0] @ (us[0].T @ vector), full_matrices=False)
        us.append(u_t[:, :per_task])
        ss.append(s_t[:per_task])
        vs.append(vh_t[:per_task].T)
    return torch.cat(ss).mean() * polar(torch.cat(us, dim=1)) @ polar(torch.cat(vs, dim=1)).T


@pytest.mark.parametrize(
    ("tasks", "common", "shared"),
    [(3, 0.8, 1.0), (8, 0.8, 2.0), (3, 0.8, 0.0), (2, 0.5, 1.0), (4, 1.0, 1.0), (4, 0.0, 1.0)],
)
def test_sliced_iso_cts_is_the_whole_matrix_formula(tasks, common, shared):
    """ISO-CTS from Gram matrices over row slices (its factors folded into maps of Δ and
    τ_t V_t) against the paper's formula on the whole matrix in float64: task vectors
    with a shared part (so the common subspace holds much of each task) and a decaying
    spectrum. The float32 whole-matrix route is checked against the same reference."""
    generator = torch.Generator().manual_seed(tasks)
    rows, columns = 300, 40
    shared_part = shared * torch.randn(rows, columns, generator=generator)
    decay = torch.logspace(0, -2, columns)
    vectors = torch.stack(
        [
            shared_part + torch.randn(rows, columns, generator=generator) * decay
            for _ in range(tasks)
        ]
    )

    def slices():
        for start in range(0, rows, 64):
            yield None, vectors[:, start : start + 64]

    reference = _iso_cts_float64(list(vectors.double()), common)
    scale = float(reference.abs().max())
    assert scale > 1
    sliced = torch.cat([update for _, update in sliced_iso_cts(slices, common)])
    whole = iso_cts_matrix(list(vectors), common)
    for route in (sliced, whole):
        torch.testing.assert_close(route.double(), reference, rtol=0, atol=5e-5 * scale)


@pytest.mark.parametrize("shape", [(40, 300), (60, 60), (300, 40)])
@pytest.mark.parametrize(("tasks", "common"), [(3, 0.8), (8, 0.8), (2, 0.5), (4, 0.0)])
def test_whole_matrix_iso_cts_is_the_formula_wide_square_and_tall(shape, tasks, common):
    """Wide and square matrices take each task's residual spectrum in the coordinates of
    the common subspace's complement, tall ones from the projected residual: both are the
    paper's formula."""
    generator = torch.Generator().manual_seed(tasks)
    shared_part = torch.randn(shape, generator=generator)
    decay = torch.logspace(0, -2, min(shape))
    if shape[0] < shape[1]:
        decay = decay[:, None]
    noise = [torch.randn(shape, generator=generator) * decay for _ in range(tasks)]
    vectors = [shared_part + part for part in noise]
    reference = _iso_cts_float64([vector.double() for vector in vectors], common)
    scale = float(reference.abs().max())
    update = iso_cts_matrix(vectors, common)
    torch.testing.assert_close(update.double(), reference, rtol=0, atol=5e-5 * scale)


def test_huge_matrix_per_task_low_rank_in_row_slices(tmp_path):
    """PERU-LoRA's per-task states: the rank-q reduction of a huge matrix from τᵀτ."""
    entry = METHODS.get("peru_lora")
    states = []
    for limits in ({}, {"whole_elements": 100, "chunk_elements": 200}):
        context = data_free_context(_bf16_pool(tmp_path, 2, **limits), torch.device("cpu"))
        states.append(entry.obj(context, rank=4).task_states("t2"))
    whole, sliced = states
    for key, tensor in whole.items():
        torch.testing.assert_close(sliced[key].float(), tensor.float(), rtol=0, atol=1e-3)


@pytest.fixture(params=["fused kernels", "torch chunks"])
def kernel_path(request, monkeypatch):
    """Both implementations of a fused pass: the numba kernels (CPU) and the torch code
    (GPU, and TIES' chunks)."""
    if request.param == "torch chunks":
        monkeypatch.setattr(kernels, "use_kernels", lambda tensor: False)
    return request.param


def test_chunked_ties_is_the_reference_formula_bitwise(monkeypatch, kernel_path):
    monkeypatch.setattr(chunks, "CHUNK", 7)  # many chunks, a ragged last one
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(10, 9, generator=generator).bfloat16().float()
    experts = [
        (base + 0.05 * torch.randn(10, 9, generator=generator)).bfloat16().float() for _ in range(4)
    ]
    experts[1][0, :3] = base[0, :3]  # zero task-vector entries
    experts[2][1, :4] = base[1, :4] + 0.03  # two vectors that cancel exactly: no elected sign
    experts[3][1, :4] = base[1, :4] - 0.03
    experts[0][1, :4] = base[1, :4]
    experts[1][1, :4] = base[1, :4]
    experts[0][2, :] = base[2, :] + 0.02  # magnitudes equal to the threshold are kept
    group = TensorGroup("w", base, experts, ["a", "b", "c", "d"])
    limits = [0.02, 0.0, 0.05, 0.03]
    trimmed = torch.stack(
        [keep_top_magnitudes(v, limit) for v, limit in zip(group.task_vectors, limits)]
    )
    expected = base + 0.7 * elect_and_disjoint_mean(trimmed)
    got = trimmed_disjoint_merge(group, limits, 0.7, chunks.Scratch())
    assert torch.equal(got, expected)


def test_thresholds_are_exact_kth_magnitudes(tmp_path, monkeypatch, kernel_path):
    monkeypatch.setattr(chunks, "CHUNK", 64)
    pool = _bf16_pool(tmp_path, 3)
    for density in (0.05, 0.2, 0.5):
        thresholds = magnitude_thresholds(pool, density, progress=False)
        for index, task in enumerate(pool.tasks):
            vector = torch.cat(
                [
                    (pool.expert_tensor(task, n) - pool.base_tensor(n)).flatten()
                    for n in pool.mergeable_names()
                ]
            ).abs()
            keep = math.ceil(density * vector.numel())
            assert thresholds[task] == float(torch.topk(vector, keep).values[-1]), index


def test_thresholds_of_given_vectors_are_exact_kth_magnitudes(tmp_path, kernel_path):
    """A ``vectors`` hook (DARE's drops, PERU's residuals) through the same kernels."""
    pool = _bf16_pool(tmp_path, 3)

    def halved(group: TensorGroup) -> list[torch.Tensor]:
        return [0.5 * vector for vector in group.task_vectors]

    for density in (0.05, 0.5):
        thresholds = magnitude_thresholds(pool, density, progress=False, vectors=halved)
        for task in pool.tasks:
            vector = torch.cat(
                [
                    0.5 * (pool.expert_tensor(task, n) - pool.base_tensor(n)).float().flatten()
                    for n in pool.mergeable_names()
                ]
            ).abs()
            keep = math.ceil(density * vector.numel())
            assert thresholds[task] == float(torch.topk(vector, keep).values[-1]), task


def test_summed_task_vectors_is_the_stacked_sum_bitwise(kernel_path):
    generator = torch.Generator().manual_seed(2)
    base = torch.randn(33, 17, generator=generator)
    experts = [base + 1e-3 * torch.randn(33, 17, generator=generator) for _ in range(5)]
    experts[3][0] = base[0] - (experts[0][0] - base[0])  # a cancelling pair
    group = TensorGroup("w", base, experts, list("abcde"))
    expected = torch.stack(group.task_vectors).sum(dim=0)
    assert torch.equal(summed_task_vectors(group), expected)


def test_magmax_kernel_is_the_argmax_formula_bitwise(kernel_path):
    """Equal magnitudes of either sign: the first task wins, as torch.argmax's first
    maximum; zeros, signed zeros and a NaN (the first NaN wins) likewise."""
    generator = torch.Generator().manual_seed(3)
    base = torch.randn(12, 11, generator=generator)
    experts = [base + 0.1 * torch.randn(12, 11, generator=generator) for _ in range(4)]
    experts[1][0] = base[0] - (experts[0][0] - base[0])  # -τ_0: the same magnitude
    experts[2][1] = base[1] + (experts[3][1] - base[1])  # τ_3 again, at an earlier task
    for expert in experts:
        expert[2] = base[2]  # all-zero task vectors
    experts[0][3, 0] = float("nan")
    experts[2][3, 1] = float("nan")
    group = TensorGroup("w", base, experts, list("abcd"))
    expected = base + 0.7 * max_magnitude(torch.stack(group.task_vectors))
    got = magmax.tensor_merge(group, scaling=0.7)
    assert torch.equal(got[:3], expected[:3]) and torch.equal(got[4:], expected[4:])
    torch.testing.assert_close(got[3], expected[3], rtol=0, atol=0, equal_nan=True)


def _float32_pool(tmp_path, group: TensorGroup) -> ExpertPool:
    """A pool of one float32 matrix per model, from a tensor group's base and experts."""
    for index, model in enumerate([group.base, *group.experts]):
        save_file({group.name: model}, str(tmp_path / f"m{index}.safetensors"))
    return ExpertPool(
        Checkpoint(tmp_path / "m0.safetensors", "base"),
        {t: Checkpoint(tmp_path / f"m{i + 1}.safetensors", t) for i, t in enumerate(group.tasks)},
    )


def test_tall_and_consensus_kernel_is_the_mask_formula_bitwise(kernel_path, tmp_path):
    """Masks at equality (strict >), all-zero entries and a cancelling sum: each task's
    TALL model and Consensus for every k, as the torch formula gives them."""
    generator = torch.Generator().manual_seed(4)
    base = torch.randn(9, 13, generator=generator)
    experts = [base + 0.1 * torch.randn(9, 13, generator=generator) for _ in range(3)]
    for expert in experts:
        expert[0] = base[0]  # τ = 0 everywhere: |τ_t| > λ·0 is false
    experts[1][1] = base[1] - (experts[0][1] - base[1])  # τ_1 = −τ_0
    experts[2][1] = base[1]  # so τ_MTL = 0 on this row
    base[2] = 0.0
    for index, expert in enumerate(experts):  # τ_2 = τ_0 + τ_1: |τ_2| = 1.0 · |τ_MTL − τ_2|
        expert[2] = 0.25 * (index + 1)
    group = TensorGroup("w", base, experts, list("abc"))
    pool = _float32_pool(tmp_path, group)
    vectors = torch.stack(group.task_vectors)
    for tall_lambda in (1.0, 0.4):
        masks = tall_masks(vectors, tall_lambda)
        tall = tall_masks_method(data_free_context(pool, torch.device("cpu")), tall_lambda, 0.8)
        for index, task in enumerate(group.tasks):
            expected = base + 0.8 * masks[index] * vectors.sum(dim=0)
            assert torch.equal(tall.task_states(task)["w"], expected), (task, tall_lambda)
        for k in range(1, 5):
            expected = base + 0.3 * (masks.sum(dim=0) >= k) * vectors.sum(dim=0)
            got = consensus.tensor_merge(group, scaling=0.3, k=k, tall_lambda=tall_lambda)
            assert torch.equal(got, expected), (k, tall_lambda)


def test_emr_kernel_is_the_elect_mask_rescale_formula_bitwise(kernel_path, tmp_path):
    """Entries whose sum cancels (γ_uni = 0), equal agreeing magnitudes, zeros, and tasks
    that disagree with the elected sign: each task's model as the torch formula."""
    generator = torch.Generator().manual_seed(5)
    base = torch.randn(8, 15, generator=generator)
    experts = [base + 0.1 * torch.randn(8, 15, generator=generator) for _ in range(4)]
    for expert in experts:
        expert[0] = base[0]  # all zero
    experts[1][1] = base[1] - (experts[0][1] - base[1])  # τ_1 = −τ_0 and τ_3 = −τ_2:
    experts[3][1] = base[1] - (experts[2][1] - base[1])  # Σ τ_t = 0, no elected sign
    experts[2][2] = experts[0][2]  # two agreeing entries of the same magnitude
    experts[0][3] = base[3]  # τ_0 = 0 where τ_uni is not: M_0 is 0 there
    group = TensorGroup("w", base, experts, list("abcd"))
    vectors = torch.stack(group.task_vectors)
    unified = unified_task_vector(vectors)
    sums = rescaler_sums(vectors)
    torch.testing.assert_close(group_rescaler_sums(group), sums, rtol=1e-12, atol=0)
    scales = rescalers(sums)
    method = emr(data_free_context(_float32_pool(tmp_path, group), torch.device("cpu")))
    for index, task in enumerate(group.tasks):
        expected = base + float(scales[index]) * emr_masks(vectors[index], unified) * unified
        assert torch.equal(method.task_states(task)["w"], expected), task


@pytest.mark.parametrize("drop", [0.3, 0.5, 0.7, 0.9])
def test_dare_kernel_is_the_drop_and_rescale_formula_bitwise(kernel_path, monkeypatch, drop):
    """The same draws, kept where draw ≥ p in float32 (a draw of exactly float32(p) is
    kept, though float32(0.7) < 0.7), rescaled by float32(1 − p), summed in task order."""
    generator = torch.Generator().manual_seed(6)
    base = torch.randn(7, 19, generator=generator)
    experts = [base + 0.1 * torch.randn(7, 19, generator=generator) for _ in range(3)]
    experts[1][0] = base[0] - (experts[0][0] - base[0])  # a cancelling pair
    group = TensorGroup("w", base, experts, list("abc"))

    def check() -> None:
        generator = group.generator()
        dropped = [sparsify.dare(vector, drop, generator) for vector in group.task_vectors]
        assert all(map(torch.equal, dare_vectors(group, drop), dropped))
        expected = base + 0.3 * torch.stack(dropped).sum(dim=0)
        assert torch.equal(dare_ta.tensor_merge(group, scaling=0.3, drop=drop), expected)

    check()
    original = sparsify.uniform

    def at_the_threshold(like, generator):
        draws = original(like, generator)
        draws.view(-1)[::3] = float(torch.tensor(drop, dtype=torch.float32))
        return draws

    monkeypatch.setattr(sparsify, "uniform", at_the_threshold)
    check()


def test_della_kernel_is_magprune_and_the_disjoint_mean_bitwise(monkeypatch):
    """Row ranks with equal magnitudes of either sign (stable: by position), zeros, a
    draw at exactly a probability; 2-D on the kernels, 1-D always on torch."""
    generator = torch.Generator().manual_seed(8)
    base = torch.randn(6, 300, generator=generator)
    experts = [base + 0.1 * torch.randn(6, 300, generator=generator) for _ in range(3)]
    signs = torch.randint(0, 3, (300,), generator=generator).float() - 1  # −1, 0, 1
    experts[0][0] = base[0] + 0.05 * signs  # three magnitudes only: long runs of ties
    experts[1][1] = base[1]  # all zero
    group = TensorGroup("w", base, experts, list("abc"))
    original = sparsify.uniform

    def some_at_a_probability(like, generator):
        draws = original(like, generator)
        draws.view(-1)[::5] = float(torch.tensor(0.75, dtype=torch.float32))
        return draws

    monkeypatch.setattr(sparsify, "uniform", some_at_a_probability)
    merged, pruned = [], []
    for use in (True, False):
        monkeypatch.setattr(kernels, "use_kernels", lambda tensor, use=use: use)
        generator = group.generator()
        pruned.append([magprune(v, 0.7, 0.1, generator) for v in group.task_vectors])
        merged.append(della.tensor_merge(group, scaling=0.9, drop=0.7, epsilon=0.1))
    assert all(map(torch.equal, *pruned))
    expected = base + 0.9 * elect_and_disjoint_mean(torch.stack(pruned[1]))
    assert torch.equal(merged[0], expected) and torch.equal(merged[1], expected)


@pytest.mark.parametrize("size", [0, 1, 2, 255, 257, 3_000])
def test_magnitude_order_is_the_stable_argsort(size):
    """DELLA's row ranks by radix sort: the stable argsort of |x| (ties by position, NaN
    last) on random magnitudes, bf16-like values (constant low bytes: skipped passes),
    signed zeros, infinities, denormals and NaN."""
    generator = np.random.default_rng(size)
    specials = np.array(
        [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, -3e-39, 0.0, 0.0], np.float32
    )
    specials.view(np.uint32)[-2:] = [0x7F800001, 0xFFFFFFFF]  # NaNs with other payloads
    rows = [
        generator.standard_normal(size).astype(np.float32),
        (generator.standard_normal(size).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(
            np.float32
        ),
        generator.choice(specials, size),
        np.full(size, -2.5, dtype=np.float32),
    ]
    for row in rows:
        order = kernels._magnitude_order(row)
        assert np.array_equal(order, np.argsort(np.abs(row), kind="stable"))


def test_ties_merge_of_given_vectors_is_the_reference_formula_bitwise(kernel_path):
    """DARE-TIES' merge: TIES over given (dropped) vectors, the kernel fed a zero base."""
    generator = torch.Generator().manual_seed(7)
    base = torch.randn(10, 9, generator=generator)
    vectors = [0.05 * torch.randn(10, 9, generator=generator) for _ in range(4)]
    vectors[1][0, :5] = 0.0  # dropped entries
    vectors[2][1] = -vectors[3][1]  # a cancelling pair: no elected sign
    vectors[0][2] = 0.02  # magnitudes equal to the threshold are kept
    group = TensorGroup("w", base, [base + v for v in vectors], list("abcd"))
    limits = [0.02, 0.0, 0.05, 0.03]
    trimmed = torch.stack([keep_top_magnitudes(v, limit) for v, limit in zip(vectors, limits)])
    expected = base + 0.7 * elect_and_disjoint_mean(trimmed)
    got = trimmed_disjoint_merge(group, limits, 0.7, chunks.Scratch(), vectors)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", ["ties", "dare_ties"])
def test_resident_pool_reads_each_file_tensor_once_and_merges_the_same(tmp_path, monkeypatch, name):
    """A multi-pass merge of a pool that fits in memory reads every tensor once (the
    statistics passes and the merge reuse them), and gives the streamed merge's weights."""
    reads: list[tuple[str, str]] = []
    original = Checkpoint.tensor

    def counted(self, tensor_name, device="cpu", rows=None, handles=None):
        reads.append((self.name, tensor_name))
        return original(self, tensor_name, device, rows, handles)

    monkeypatch.setattr(Checkpoint, "tensor", counted)
    pool = _bf16_pool(tmp_path, 3)
    assert pool.resident_bytes() == pool.num_parameters() * 4 * 4
    held = _merge(pool, name)
    assert sorted(reads) == sorted(set(reads))  # once each
    assert len(reads) == 4 * len(pool.mergeable_names())
    assert pool._resident is None and pool._handles is None  # released after the merge

    reads.clear()
    monkeypatch.setattr(
        ExpertPool, "resident", functools.partialmethod(ExpertPool.resident, limit=10)
    )
    streamed = _merge(pool, name)
    assert len(reads) == 3 * 4 * len(pool.mergeable_names())  # too large: three passes
    for key, tensor in held.items():
        assert torch.equal(streamed[key], tensor), key


def test_resident_is_a_no_op_above_the_limit_and_when_nested(tmp_path):
    pool = _bf16_pool(tmp_path, 2)
    with pool.resident(limit=pool.resident_bytes() - 1) as held:
        assert not held and pool._resident is None
    with pool.resident(limit=pool.resident_bytes()) as held:
        first = pool.base_tensor("w")
        assert held and pool.base_tensor("w") is first
        with pool.resident() as inner:  # nested: already held, released by the outer block
            assert inner
        assert pool._resident is not None
    assert pool._resident is None and pool.base_tensor("w") is not first


@pytest.mark.parametrize(
    "low, high", [(0, 23), (17, 180), (40, 41), (60, 60), (0, 200), (150, 200)]
)
def test_rank_band_masks_are_the_sorted_ranks_whole_and_in_slices(kernel_path, low, high):
    """PCB's kept top-r and Breadcrumbs' band from order statistics: the masks a stable
    sort of |v| gives, ties by position, whether the tensor comes whole or in slices."""
    generator = torch.Generator().manual_seed(3)
    vectors = [(torch.randn(200, generator=generator) * 4).round() / 4 for _ in range(3)]
    vectors[0][::3] = 0.25  # long runs of equal magnitudes across slices, of either sign
    vectors[1][1::4] = -0.25
    vectors[1][::5] = -0.0  # signed zeros rank with the zeros
    vectors[2][:] = 0.5  # one value everywhere: the band falls by position alone
    expected = [(ranks >= low) & (ranks < high) for ranks in map(sparsify.magnitude_ranks, vectors)]
    for mask, reference in zip(sparsify.rank_band_masks(vectors, low, high), expected):
        assert torch.equal(mask, reference)
    cuts = [0, 1, 7, 7, 64, 130, 199, 200]  # ragged slices, an empty one

    def slices():
        for start, stop in zip(cuts, cuts[1:]):
            yield (start, stop), [vector[start:stop] for vector in vectors]

    pieces = list(sparsify.sliced_rank_masks(slices, 200, low, high))
    for index, reference in enumerate(expected):
        assert torch.equal(torch.cat([masks[index] for _, masks in pieces]), reference)
