"""Data statistics that data-based merging methods need: layer-input Gram matrices and
diagonal Fisher information.

Both are collected from one model at a time (a model built by the suite, parameter names
equal to the pool's), so a method holds one backbone plus the statistics, never N models.

- Gram matrices (RegMean, RegMean++): for every linear layer with input X (the token
  positions of all examples stacked as rows; padding positions, which are not part of
  any example and whose number depends only on how examples were batched, are left out
  where the suite marks them), G = Xᵀ X, keyed by the layer's weight name,
  with the number of rows; ``task_gram`` turns it into the per-task mean XᵀX / rows
  (RegMean's authors' code, FusionBench) or keeps the sum.

A linear layer is an ``nn.Linear`` (weight stored [out, in], y = x Wᵀ + b) or
transformers' ``Conv1D`` of GPT-2 (weight stored [in, out], y = x W + b): the same map with
the weight stored transposed. :func:`input_major` tells them apart, and the regression
code works in the [out, in] layout and hands results back in the stored one.
- Diagonal Fisher (Fisher merging): F = E_x E_{y∼p(y|x)} [(∇_θ log p(y|x))²], estimated
  with per-example gradients (or, to reproduce FusionBench, its per-batch estimator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from harness.errors import HarnessError, HyperparameterError


class NoLinearLayersError(HarnessError):
    """The backbone has no linear layers for a regression-based merge."""


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # without transformers there is no Conv1D to meet
        return None
    return Conv1D


def input_major(module: nn.Module) -> bool:
    """True for a linear layer whose weight is stored [in, out] (GPT-2's ``Conv1D``)."""
    conv1d = _conv1d_type()
    return conv1d is not None and isinstance(module, conv1d)


def is_linear(module: nn.Module) -> bool:
    """An affine map of the last dimension: ``nn.Linear`` or transformers' ``Conv1D``."""
    return isinstance(module, nn.Linear) or input_major(module)


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Weight name (pool name) → linear module (``nn.Linear`` or ``Conv1D``), in module
    order."""
    layers = {
        f"{name}.weight" if name else "weight": module
        for name, module in model.named_modules()
        if is_linear(module)
    }
    return layers


def out_in(weight: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """A linear layer's weight in the [out, in] layout of ``nn.Linear``."""
    return weight.T if input_major(module) else weight


def stored_layout(weight: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """An [out, in] weight back in ``module``'s stored layout (inverse of :func:`out_in`)."""
    return weight.T.contiguous() if input_major(module) else weight


class GramCollector:
    """Forward hooks that add Xᵀ X of each chosen linear layer's input to a running sum
    (X: the layer's input, whatever the layout of its weight).

    ``layers`` maps weight names to modules; ``grams[name]`` is the float32 sum on the
    model's device, ``counts[name]`` the number of rows (tokens) seen. ``row_mask``, when
    set for the batch in flight (``[B, L]`` bool: the real tokens), keeps only those rows
    of inputs shaped ``[B, L, d]``; inputs of another shape (an encoder-decoder's decoder
    side) keep every row.
    """

    def __init__(self, layers: Mapping[str, nn.Module]) -> None:
        self.layers = dict(layers)
        self.grams: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {name: 0 for name in self.layers}
        self.row_mask: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.row_mask
        if mask is not None and x.dim() == mask.dim() + 1 and x.shape[:-1] == mask.shape:
            return x[mask.to(x.device)]
        return x.reshape(-1, x.shape[-1])

    def feed(
        self, model: nn.Module, inputs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Run one batch through ``model`` with ``mask`` marking its real tokens."""
        self.row_mask = mask
        try:
            model(inputs)
        finally:
            self.row_mask = None

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            x = self._rows(inputs[0].detach()).float()
            gram = x.T @ x
            if name in self.grams:
                self.grams[name] += gram
            else:
                self.grams[name] = gram
            self.counts[name] += x.shape[0]

        return hook

    def __enter__(self) -> GramCollector:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@torch.no_grad()
def input_grams(
    model: nn.Module,
    inputs: Iterable[torch.Tensor],
    device: torch.device,
    layers: Mapping[str, nn.Module] | None = None,
    token_mask: Callable[[torch.Tensor], torch.Tensor | None] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Gram matrices Xᵀ X of the inputs of ``layers`` (default: every linear layer), over
    the real token positions that ``token_mask(inputs)`` marks (all when None)."""
    layers = linear_layers(model) if layers is None else layers
    if not layers:
        raise NoLinearLayersError(
            "the backbone has no linear layers (nn.Linear or Conv1D); RegMean needs linear "
            "layers to merge"
        )
    with GramCollector(layers) as collector:
        for batch in inputs:
            mask = token_mask(batch) if token_mask is not None else None
            collector.feed(model, batch.to(device), mask)
    return collector.grams, collector.counts


GRAM_REDUCTIONS = ("mean", "sum")


def task_gram(gram: torch.Tensor, rows: int, reduction: str) -> torch.Tensor:
    """One task's Gram matrix from the summed XᵀX over ``rows`` token rows.

    ``"mean"`` (XᵀX / rows) weighs every task equally in RegMean's regression, whatever
    its number of examples or tokens (the authors' code and FusionBench keep this running
    mean); ``"sum"`` keeps XᵀX, so a task with more rows weighs more (the objective
    Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖² taken literally over the pooled rows). With equal row counts
    the two give the same merge: a common factor cancels in the closed form.
    """
    if reduction == "mean":
        return gram / max(rows, 1)
    if reduction == "sum":
        return gram
    raise HyperparameterError(
        f"gram must be one of {', '.join(GRAM_REDUCTIONS)}, got {reduction!r}"
    )


def scale_off_diagonal(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """RegMean's regularised Gram matrix: α G + (1 − α) diag(G)."""
    diagonal = torch.diagonal(gram)
    return alpha * gram + (1.0 - alpha) * torch.diag_embed(diagonal)


def regression_merge(grams: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """RegMean's closed form for one linear layer (weights stored as [out, in]).

    Minimises Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖² over W:  Wᵀ = (Σ_t G_t)⁻¹ Σ_t G_t W_tᵀ.
    """
    total = torch.stack(grams).sum(0)
    right = sum(gram @ weight.T for gram, weight in zip(grams, weights))
    return solve_spd(total, right).T


def solve_spd(matrix: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Solve A X = B for a symmetric positive semi-definite A, falling back to lstsq."""
    matrix = matrix.double()
    right = right.double()
    try:
        return torch.linalg.solve(matrix, right).float()
    except RuntimeError:  # singular: least-norm solution
        return torch.linalg.lstsq(matrix.cpu(), right.cpu()).solution.to(matrix.device).float()


FISHER_ESTIMATORS = ("per_example", "batch_expected")


def diagonal_fisher(
    model: nn.Module,
    head: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    labels: str = "sampled",
    generator: torch.Generator | None = None,
    estimator: str = "per_example",
) -> tuple[dict[str, torch.Tensor], int]:
    """Summed squared gradients that estimate the diagonal Fisher, and the example count
    (divide by it for the mean).

    ``estimator="per_example"`` (Matena & Raffel): Σ over examples of the squared
    per-example gradient of log p(y|x). ``labels="sampled"`` draws y ∼ p(y|x) from the
    model (an unbiased estimate of the Fisher information); ``"empirical"`` uses the true
    labels (the "empirical Fisher"). Per-example gradients are taken one example at a
    time (exact for any architecture, including attention kernels that
    ``torch.func.vmap`` would run through a slow fallback).

    ``estimator="batch_expected"`` (FusionBench's ``get_fisher_weights``, for
    reproducing its numbers): per batch B, the square of one gradient,
    (∇ Σ_{x∈B} Σ_y √p(y|x) log p(y|x))² with √p held constant; ``labels`` is not used.
    Squaring a sum over examples and classes adds cross terms, so this is a biased
    estimate, and it depends on the batch size.
    """
    if labels not in ("sampled", "empirical"):
        raise HarnessError(f"fisher labels must be 'sampled' or 'empirical', got {labels!r}")
    if estimator not in FISHER_ESTIMATORS:
        raise HarnessError(
            f"fisher estimator must be one of {', '.join(FISHER_ESTIMATORS)}, got {estimator!r}"
        )
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    head = head.to(device)
    sums = {name: torch.zeros_like(p) for name, p in named}
    count = 0

    def accumulate(objective: torch.Tensor) -> None:
        grads = torch.autograd.grad(objective, params, allow_unused=True)
        for (name, _), value in zip(named, grads):
            if value is not None:
                sums[name] += value.detach().pow(2)

    for inputs, targets in batches:
        inputs = inputs.to(device)
        if estimator == "batch_expected":
            log_probs = torch.log_softmax(head(model(inputs)).float(), dim=-1)
            weights = log_probs.detach().exp().sqrt()
            accumulate((weights * log_probs).sum())
            count += inputs.shape[0]
            continue
        if labels == "sampled":
            with torch.no_grad():
                probs = torch.softmax(head(model(inputs)).float(), dim=-1).cpu()
            targets = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        for index in range(inputs.shape[0]):
            log_probs = torch.log_softmax(head(model(inputs[index : index + 1])), dim=-1)
            accumulate(log_probs[0, int(targets[index])])
        count += inputs.shape[0]
    return sums, count


def causal_lm_fisher(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    token_mask: Callable[[torch.Tensor], torch.Tensor | None],
    *,
    labels: str = "sampled",
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], int]:
    """:func:`diagonal_fisher` for a causal LM over fine-tuning sequences: per example, the
    squared gradient of log p(y|x) = Σ_t log p(y_t | x, y_<t) over the answer tokens.

    Batches are ``(input_ids, prompt_lengths)`` (a generation suite's ``batches``, right
    padded; ``token_mask`` marks the real tokens): the answer is each sequence after its
    prompt. ``labels="sampled"`` draws each answer token from the model given the gold
    prefix (teacher forcing: one forward pass instead of a generation per example, the
    usual approximation of sampling whole answers); ``"empirical"`` uses the gold answer.
    """
    if labels not in ("sampled", "empirical"):
        raise HarnessError(f"fisher labels must be 'sampled' or 'empirical', got {labels!r}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    sums = {name: torch.zeros_like(p) for name, p in named}
    count = 0
    for inputs, prompt_lengths in batches:
        mask = token_mask(inputs)
        for index in range(inputs.shape[0]):
            ids = inputs[index] if mask is None else inputs[index][mask[index]]
            start = int(prompt_lengths[index])
            if not 0 < start < len(ids):
                continue  # no answer token to score
            logits = model(ids[None].to(device)).logits[0, start - 1 : len(ids) - 1]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            if labels == "sampled":
                probs = log_probs.detach().exp().cpu()
                targets = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                targets = ids[start:]
            objective = log_probs.gather(1, targets.to(device)[:, None]).sum()
            grads = torch.autograd.grad(objective, params, allow_unused=True)
            for (name, _), value in zip(named, grads):
                if value is not None:
                    sums[name] += value.detach().pow(2)
            count += 1
    return sums, count


def regression_bytes(name: str, module: nn.Module) -> int:
    """Bytes RegMean holds for one linear layer while collecting (float32): the task's
    Gram G_t, the running Σ_t G̃_t (both d_in²) and Σ_t G̃_t W_tᵀ (d_in × d_out)."""
    d_out, d_in = out_in(module.weight, module).shape
    return 4 * (2 * d_in * d_in + d_in * d_out)


def layer_groups(
    layers: Mapping[str, nn.Module], budget_bytes: int = 0
) -> list[dict[str, nn.Module]]:
    """``layers`` in consecutive groups whose regression sums (``regression_bytes``) fit in
    ``budget_bytes``, each group one pass over the data; one group when the budget is 0.
    A layer above the budget on its own is a group of one. At Llama-3.1-8B's size the
    sums of all 225 linear layers are 101 GiB; under a budget they are built and solved a
    few blocks at a time, at the price of one more pass over each expert's data per group.
    """
    if budget_bytes <= 0:
        return [dict(layers)]
    groups: list[dict[str, nn.Module]] = []
    current: dict[str, nn.Module] = {}
    used = 0
    for name, module in layers.items():
        size = regression_bytes(name, module)
        if current and used + size > budget_bytes:
            groups.append(current)
            current, used = {}, 0
        current[name] = module
        used += size
    if current:
        groups.append(current)
    return groups


class RegressionSums:
    """Running Σ_t G̃_t and Σ_t G̃_t W_tᵀ per linear layer, so RegMean holds one expert at
    a time: G̃_t = α G_t + (1 − α) diag(G_t) is RegMean's regularised Gram matrix.

    Weights are given and returned in their stored layout; ``input_major=True`` says a
    layer stores [in, out] (GPT-2's ``Conv1D``), where W_tᵀ is the stored tensor itself.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.grams: dict[str, torch.Tensor] = {}
        self.products: dict[str, torch.Tensor] = {}
        self.input_major: dict[str, bool] = {}

    def add(
        self, name: str, gram: torch.Tensor, weight: torch.Tensor, *, input_major: bool = False
    ) -> None:
        gram = scale_off_diagonal(gram.float(), self.alpha)
        transposed = weight.float() if input_major else weight.float().T  # W_tᵀ: [in, out]
        product = gram @ transposed
        if name in self.grams:
            if self.input_major[name] != input_major:
                raise ValueError(f"{name}: the weight layout changed between experts")
            self.grams[name] += gram
            self.products[name] += product
        else:
            self.grams[name] = gram
            self.products[name] = product
            self.input_major[name] = input_major

    def solve(self, name: str) -> torch.Tensor:
        """W = ((Σ G̃_t)⁻¹ Σ G̃_t W_tᵀ)ᵀ, in the layer's stored layout ([out, in] for
        ``nn.Linear``, [in, out] for ``Conv1D``)."""
        solution = solve_spd(self.grams[name], self.products[name])  # Wᵀ: [in, out]
        return solution.contiguous() if self.input_major[name] else solution.T.contiguous()


def transformer_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of blocks: the longest ``nn.ModuleList`` whose every entry holds a
    linear layer (``encoder.layers`` of a ViT, ``model.layers`` of a LLaMA)."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        holds_linear = all(any(is_linear(m) for m in block.modules()) for block in module)
        if holds_linear and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None:
        raise NoLinearLayersError(
            "the backbone has no stack of blocks with linear layers; use regmean instead"
        )
    return best


def inputs_of(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> Iterable[torch.Tensor]:
    """Inputs only from (inputs, labels) batches."""
    for inputs, _ in batches:
        yield inputs
