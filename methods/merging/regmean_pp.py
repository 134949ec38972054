"""RegMean++ (Nguyen et al., TMLR 2026, "RegMean++: Enhancing effectiveness and
generalization of regression mean for model merging"), https://arxiv.org/abs/2508.03121

RegMean merges every linear layer independently, from inputs computed by each expert's
own earlier layers. RegMean++ keeps RegMean's closed form per linear layer,

    Wᵀ = (Σ_t G̃_t)⁻¹ Σ_t G̃_t W_tᵀ,   G̃_t = α X_tᵀX_t + (1 − α) diag(X_tᵀX_t),

but computes the inputs X_t^(l) of block l by running task t's examples through the
already *merged* blocks 1 … l−1 and then expert t's block l (the cross-layer
dependency); inside block l the inputs of its linear layers come from expert t's own
sub-layers (the intra-layer dependency). Blocks are merged in order, first to last.

Checked against the paper's abstract and summaries (intra- and cross-layer dependencies
between the merged model's layers; same closed form; same α and example counts as
RegMean). G_t is the per-task mean over token rows by default, ``gram=sum`` keeps the
sum (see ``methods.merging.regmean``; FusionBench's RegMean++ keeps the running mean).
Implementation notes: non-linear parameters are averaged before the blocks are merged
(so embeddings feeding block 1 are the merged ones); linear layers outside the block
stack are merged last, with inputs from the fully merged model. Each block costs one
partial forward per task (stopped right after that block).

Deviation from FusionBench (``method/regmean_plusplus/clip_regmean_plusplus.py``): it
starts the merged model from the *pretrained* one and merges only the embeddings and
``pre_layrnorm`` (averaged) and the encoder blocks, so the vision tower's final
``post_layernorm`` keeps its pretrained value; here every parameter outside the blocks
that is not a linear weight, ``post_layernorm`` included, is the experts' average.
"""

from __future__ import annotations

import contextlib

import torch

from harness.merging.statistics import (
    GramCollector,
    RegressionSums,
    input_major,
    inputs_of,
    linear_layers,
    task_gram,
    transformer_blocks,
)
from harness.method import MethodContext, Solution
from harness.registry import register_method
from methods.merging.regmean import PARAMS, SMOKE, average_except


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the block of interest has run."""


def _stop_hook(*_: object) -> None:
    raise _Stop


@register_method(
    "regmean_pp",
    family="merging",
    needs=("batches",),
    reference="https://arxiv.org/abs/2508.03121",
    params=PARAMS,
    smoke=SMOKE,
    description="RegMean with layer inputs computed by the merged model's earlier blocks.",
)
def regmean_pp(
    context: MethodContext, alpha: float, num_examples: int, batch_size: int, gram: str
) -> Solution:
    pool = context.pool
    device = context.device
    # Start from the experts' average: non-linear parameters keep it, blocks are replaced.
    merged_state = average_except(context, {})
    model = context.build_model(merged_state)
    parameters = dict(model.named_parameters())
    blocks_name, blocks = transformer_blocks(model)
    layers = linear_layers(model)
    stages: list[tuple[torch.nn.Module | None, dict]] = []
    for index, block in enumerate(blocks):
        prefix = f"{blocks_name}.{index}."
        stages.append((block, {n: m for n, m in layers.items() if n.startswith(prefix)}))
    outside = {n: m for n, m in layers.items() if not n.startswith(f"{blocks_name}.")}
    if outside:
        stages.append((None, outside))

    merged: dict[str, torch.Tensor] = {}
    for index, (block, stage_layers) in enumerate(stages):
        prefix = f"{blocks_name}.{index}." if block is not None else None
        names = [n for n in parameters if prefix and n.startswith(prefix)]
        names += [n.rsplit(".", 1)[0] + ".bias" for n in stage_layers]
        names = sorted({n for n in names if n in parameters} | set(stage_layers))
        sums = RegressionSums(alpha)
        averages = {n: torch.zeros_like(parameters[n]) for n in names}
        for task in pool.tasks:
            with torch.no_grad():
                for name in names:  # expert t's block l on top of the merged blocks < l
                    parameters[name].copy_(pool.expert_tensor(task, name).to(device))
            handle = block.register_forward_hook(_stop_hook) if block is not None else None
            batches = context.labeled_batches(
                task, "train", batch_size=batch_size, limit=num_examples
            )
            with GramCollector(stage_layers) as collector, torch.no_grad():
                for inputs in inputs_of(batches):
                    with contextlib.suppress(_Stop):
                        collector.feed(model, inputs.to(device), context.token_mask(inputs))
            if handle is not None:
                handle.remove()
            for name, summed in collector.grams.items():
                rows = collector.counts[name]
                major = input_major(stage_layers[name])  # GPT-2's Conv1D stores [in, out]
                sums.add(name, task_gram(summed, rows, gram), parameters[name], input_major=major)
            for name in averages:
                averages[name] += parameters[name].detach() / len(pool.tasks)
        with torch.no_grad():
            for name, value in averages.items():  # layers that saw no input stay averaged
                parameters[name].copy_(sums.solve(name) if name in sums.grams else value)
                if name in stage_layers:
                    merged[name] = parameters[name].detach().cpu().clone()
    state = average_except(context, merged)
    info = {"regression_layers": len(merged), "blocks": len(blocks), "gram": gram}
    return Solution(state=state, info=info)
