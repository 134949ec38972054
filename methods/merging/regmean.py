"""RegMean (Jin et al., ICLR 2023, "Dataless knowledge fusion by merging weights of
language models"), https://arxiv.org/abs/2212.09849

Each linear layer is merged as the solution of a regression that asks the merged layer
to reproduce every expert's outputs on that expert's own inputs:

    min_W Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖²   ⇒   Wᵀ = (Σ_t G_t)⁻¹ Σ_t G_t W_tᵀ,   G_t = X_tᵀ X_t

X_t are the inputs of the layer in expert t on task t's training examples (all token
positions of the examples; padding added to batch them is left out, so the merge does
not depend on how examples were batched). The Gram matrices are regularised by shrinking
their off-diagonal entries, G̃_t = α G_t + (1 − α) diag(G_t); α = 1 is the exact
regression, α → 0 tends to a per-input-feature weighted average. Parameters that are not
linear weights (biases, LayerNorms, embeddings) are averaged. Linear layers are
``nn.Linear`` and GPT-2's ``Conv1D`` (the same map, weight stored transposed; see
``harness.merging.statistics``).

G_t is the *mean* of x xᵀ over task t's token rows, G_t = X_tᵀ X_t / n_t (``gram=mean``,
the default), so every task weighs the same in the regression whatever its number of
examples or tokens. The paper writes the objective above with unnormalised X_tᵀ X_t
(read literally over pooled rows, a task with more rows would weigh more) and draws the
same number of examples per model, so its text does not separate the two; the authors'
code that produced its numbers (``src/model_merge/local_trainer.py`` ``compute_grams``,
and ``regmean_demo.ipynb``) keeps the running mean ``xtx / x.size(0)`` per model, as
FusionBench does (``method/regmean/regmean.py``). ``gram=sum`` keeps the sums. The two
agree when the tasks have equal row counts (a common factor cancels) and differ on
suites with short train splits or variable sequence lengths.

What was checked: the authors' code (bloomberg/dataless-model-merging,
``src/configs/defaults.yaml`` and ``src/configs/exps/*/*-regmean.yaml``): the Gram
matrices come from each model's own layer inputs, ``regmean_reduce_nondiag`` scales the
off-diagonal entries (default −1: no scaling, α = 1) and is set per experiment (e.g. 0.1
for DeBERTa-large on emotion), ``gram_n_example`` is 1000 in their GLUE and emotion
configs. Their experiments are NLP only. On CLIP ViT suites FusionBench
(``config/method/regmean/clip_regmean.yaml``) uses 256 examples and α = 0.95
(``reduce_non_diagonal_ratio``; 0.6 is its GPT-2 value, ``gpt2_regmean.yaml``, and 0.1
its base ``regmean.yaml``), and the DARE authors' RegMean search is α ∈ {0.7, 0.8, 0.9,
1.0} × {256, 512, 1024, 2048} examples (yule-BUAA/MergeLM ``merge_plms_glue.py``). The
paper's own per-setting table could not be read in this session, so α = 0.9 stays a
choice (α is tuned on validation data, grid 0.1–0.95 with FusionBench's CLIP 0.95); 256
examples per task is FusionBench's CLIP value. Only one expert is held at a time:
Σ_t G̃_t and Σ_t G̃_t W_tᵀ are running sums.

Memory: the sums take 4 (2 d_in² + d_in d_out) bytes per linear layer: 3.1 GiB per
Llama-3.1-8B block and 101 GiB for its 225 linear layers (the LM head's alone 2.1 GiB).
``gram_budget_mib`` caps what is held at once: the layers are merged in consecutive
groups under the cap (a layer above it alone), each group one more pass over every
expert's examples, and the merge is the same (each layer sees the same inputs in the
same order).
"""

from __future__ import annotations

import torch

from harness.merging.statistics import (
    GRAM_REDUCTIONS,
    RegressionSums,
    input_grams,
    input_major,
    inputs_of,
    layer_groups,
    linear_layers,
    task_gram,
)
from harness.merging.stream import merge_stream, stack
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.weights.pool import TensorGroup

ALPHA = Param(
    0.9,
    help="α, the scale of the Gram matrices' off-diagonal entries",
    low=0.0,
    high=1.0,
    grid=[0.1, 0.5, 0.9, 0.95],
)
NUM_EXAMPLES = Param(256, help="training examples per task for the Gram matrices", low=1)
BATCH_SIZE = Param(32, help="batch size while collecting Gram matrices", low=1)
GRAM = Param(
    "mean",
    help="G_t: the mean of x xᵀ over a task's token rows (every task weighs the same) or the sum",
    choices=GRAM_REDUCTIONS,
)
# RegMean++ takes the same hyperparameters with the same defaults
PARAMS = {"alpha": ALPHA, "num_examples": NUM_EXAMPLES, "batch_size": BATCH_SIZE, "gram": GRAM}
GRAM_BUDGET_MIB = Param(
    0,
    help="MiB of Gram and regression sums held at once; layers are merged in groups under "
    "it, one pass over the data per group (0: every layer in one pass)",
    low=0,
)
SMOKE = {"num_examples": 16}  # fewer examples for the contract tests only


def average_except(context: MethodContext, merged: dict[str, torch.Tensor]) -> dict:
    """Complete ``merged`` with the experts' average of every other mergeable tensor."""
    rest = [name for name in context.pool.mergeable_names() if name not in merged]

    def average(group: TensorGroup) -> torch.Tensor:
        if group.name in merged:
            return merged[group.name]
        return stack(group.experts).mean(dim=0)

    state = merge_stream(context, average) if rest else context.pool.output_state(merged)
    return state


@register_method(
    "regmean",
    family="merging",
    needs=("batches",),
    reference="https://arxiv.org/abs/2212.09849",
    params={**PARAMS, "gram_budget_mib": GRAM_BUDGET_MIB},
    smoke=SMOKE,
    description="Per linear layer, the least-squares merge of the experts' outputs on their data.",
)
def regmean(
    context: MethodContext,
    alpha: float,
    num_examples: int,
    batch_size: int,
    gram: str,
    gram_budget_mib: int = 0,
) -> Solution:
    pool = context.pool
    model = context.build_model(pool.base_state())
    layers = linear_layers(model)
    groups = layer_groups(layers, gram_budget_mib << 20)
    merged: dict[str, torch.Tensor] = {}
    for group in groups:  # one group (every layer) unless a budget splits them
        sums = RegressionSums(alpha)
        for task in pool.tasks:
            expert = pool.expert_state(task)
            model.load_state_dict(expert, strict=True)
            batches = context.labeled_batches(
                task, "train", batch_size=batch_size, limit=num_examples
            )
            grams, rows = input_grams(
                model, inputs_of(batches), context.device, group, token_mask=context.token_mask
            )
            for name, summed in grams.items():
                weight = expert[name].to(context.device)
                major = input_major(layers[name])  # GPT-2's Conv1D stores [in, out]
                sums.add(name, task_gram(summed, rows[name], gram), weight, input_major=major)
            del expert, grams
        merged |= {name: sums.solve(name).cpu() for name in group if name in sums.grams}
        del sums
    state = average_except(context, merged)
    info = {"regression_layers": len(merged), "gram": gram, "passes": len(groups)}
    return Solution(state=state, info=info)
