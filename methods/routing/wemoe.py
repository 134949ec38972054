"""WEMoE (Tang et al., ICML 2024, "Merging multi-task models via weight-ensembling
mixture of experts"), https://arxiv.org/abs/2402.00433

The parts of the experts that interfere least are merged; the MLPs, where task knowledge
conflicts most, are upscaled into weight-ensembling mixtures whose weights a router picks
per input:

    shared (attention, embeddings, norms):  θ_s = θ_0 + λ_0 Σ_t τ_t     (task arithmetic)
    each block's MLP:   MLP(h; θ_0^mlp + Σ_t r_t(h) τ_t^mlp),  τ_t^mlp = θ_t^mlp − θ_0^mlp
    router per block:   r(h) = mean over the input's tokens of R(h_token),
                        R(h) = W_2 ReLU(W_1 h + b_1) + b_2 ∈ R^T  (raw weights, no softmax)
    test-time adaptation:  min_R  Σ_t E_{x ∈ test_t} H(softmax(head_t(f(x))))

h is the hidden state entering the MLP (after the block's LayerNorm), so each block routes
on its own input; the weights are per input (the mean of its tokens' router outputs), so
a mixed-task stream needs no task id. Only the routers train, on UNLABELED test inputs
(entropy minimisation, as AdaMerging), test labels are never read.

Checked against the authors' code (tanganke/weight-ensembling_MoE) and FusionBench
(``fusion_bench/models/we_moe.py``, ``method/we_moe/clip_we_moe.py``,
``config/method/wemoe/weight_ensembling_moe.yaml``): the non-MLP weights are the task-
arithmetic merge with scaling ``init_lambda`` = 0.3; each CLIP encoder layer's ``mlp``
(here also a BERT layer's ``intermediate`` + ``output.dense``) becomes a weight-ensembling
MoE over the pretrained MLP plus the experts' MLP task vectors; the router has 2 hidden
layers by default (Linear H→H, ReLU, Linear H→T; weights drawn from N(0, 0.01²), first
bias 0, last bias ``init_lambda``, so step 0 is task arithmetic with λ = 0.3 everywhere);
its per-token outputs are averaged over the sequence; Adam, lr 1e-4, 1000 steps, 16
unlabeled test inputs per task per step, the summed per-task mean entropy as the loss.
FusionBench lists WEMoE under "Model Mixing", not "Model Merging" (the result is larger
than one model and routes per input), so it is registered in the routing family here.

Deviations: FusionBench trains with ``batch_reduce`` (one routing vector per batch) to save
memory and routes per input only at test time; here the routing is per input in training
too (exact, the MLPs are small enough). The test batches are read in a fixed order
(``methods.merging.adamerging.unlabeled_stream``), not shuffled. On text suites the
token mean skips padding (``Suite.token_mask``). Stored beyond one model: the MLP task
vectors of every expert and the routers (``extra_parameters``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from harness.errors import HarnessError
from harness.merging.coefficients import TaskVectorMixer, entropy, heads, optimise
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from methods.merging.adamerging import unlabeled_stream

INIT_LAMBDA = Param(
    0.3, help="task-arithmetic scaling of the shared weights and the routers' initial output"
)
ROUTER_HIDDEN_LAYERS = Param(2, help="router depth (0: one learned vector)", choices=(0, 1, 2))
LR = Param(1e-4, help="router Adam learning rate", low=0.0)
STEPS = Param(1000, help="test-time adaptation steps", low=0)
BATCH_SIZE = Param(16, help="unlabeled test inputs per task per step", low=1)
ROUTER_INIT_STD = 0.01  # the routers' weight init N(0, 0.01²), as the authors'


def is_mlp(name: str) -> bool:
    """A transformer block's MLP (``mlp`` in CLIP, GPT-2 and Llama's module names)."""
    return name.rsplit(".", 1)[-1] == "mlp"


class SplitFeedForward(nn.Module):
    """BERT's MLP, which transformers splits across two modules: ``intermediate`` (dense +
    activation) and ``output.dense``; the residual add and LayerNorm stay in ``output``."""

    def __init__(self, intermediate: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.intermediate = intermediate
        self.projection = projection

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.projection(self.intermediate(hidden))


@dataclass
class FeedForward:
    """One block's MLP as a module hidden → MLP output, where its parameters live in the
    pool, and how a replacement is put in its place."""

    module: nn.Module
    pool_names: dict[str, str]  # the module's parameter names → the pool's names
    install: Callable[[nn.Module], None]


def feed_forwards(backbone: nn.Module) -> list[FeedForward]:
    """Every block's MLP: modules named ``mlp`` (CLIP, GPT-2, Llama) and BERT layers'
    ``intermediate`` + ``output.dense`` pairs (the replacement goes in ``intermediate``'s
    place and ``output.dense`` becomes the identity, so ``output`` adds the residual and
    normalises as before)."""
    found = []
    for name, module in backbone.named_modules():
        prefix = f"{name}." if name else ""
        if is_mlp(name):
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name) if parent_name else backbone
            found.append(
                FeedForward(
                    module,
                    {p: prefix + p for p, _ in module.named_parameters()},
                    lambda new, parent=parent, child=child: setattr(parent, child, new),
                )
            )
        elif _is_bert_layer(module):
            split = SplitFeedForward(module.intermediate, module.output.dense)
            names = {
                f"intermediate.{p}": f"{prefix}intermediate.{p}"
                for p, _ in module.intermediate.named_parameters()
            }
            names.update({f"projection.{p}": f"{prefix}output.dense.{p}"
                          for p, _ in module.output.dense.named_parameters()})  # fmt: skip

            def install(new: nn.Module, layer: nn.Module = module) -> None:
                layer.intermediate = new
                layer.output.dense = nn.Identity()

            found.append(FeedForward(split, names, install))
    return found


def _is_bert_layer(module: nn.Module) -> bool:
    output = getattr(module, "output", None)
    return (
        hasattr(module, "intermediate")
        and hasattr(module, "attention")
        and isinstance(getattr(output, "dense", None), nn.Linear)
        and hasattr(output, "LayerNorm")
    )


class Router(nn.Module):
    """R: hidden state → T raw routing weights, initialised to output ``init_lambda``."""

    def __init__(
        self, hidden: int, experts: int, depth: int, init_lambda: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.depth = depth
        if depth == 0:
            self.weights = nn.Parameter(torch.full((experts,), float(init_lambda)))
            return
        widths = [hidden] * depth + [experts]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.normal_(0.0, ROUTER_INIT_STD, generator=generator)
                layer.bias.zero_()
            self.layers[-1].bias.fill_(float(init_lambda))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., H] → [..., T]."""
        if self.depth == 0:
            return self.weights.expand(*hidden.shape[:-1], -1)
        for layer in self.layers[:-1]:
            hidden = torch.relu(layer(hidden))
        return self.layers[-1](hidden)


class WeightEnsemblingMLP(nn.Module):
    """MLP(h; θ_0 + Σ_t r_t(h) τ_t), per input, with θ_0 and τ stored as buffers."""

    def __init__(
        self,
        mlp: nn.Module,
        base: dict[str, torch.Tensor],  # the MLP's local parameter names → θ_0
        vectors: dict[str, torch.Tensor],  # → [T, *shape]
        router: Router,
        token_mask: Callable[[], torch.Tensor | None],
    ) -> None:
        super().__init__()
        self.mlp = mlp.requires_grad_(False)
        self.router = router
        self.names = list(base)
        for index, name in enumerate(self.names):
            self.register_buffer(f"base_{index}", base[name], persistent=False)
            self.register_buffer(f"vectors_{index}", vectors[name], persistent=False)
        self._token_mask = token_mask
        self.fixed: torch.Tensor | None = None  # force routing weights [B or 1, T] (tests)
        self.last_weights: torch.Tensor | None = None  # [B, T] of the last pass (analysis)

    def routing(self, hidden: torch.Tensor) -> torch.Tensor:
        """Per-input weights [B, T]: the router's outputs averaged over real tokens."""
        weights = self.router(hidden.float())
        if hidden.dim() == 3:
            mask = self._token_mask()
            if mask is None or mask.shape != hidden.shape[:2]:
                weights = weights.mean(dim=1)
            else:
                keep = mask.to(weights.dtype).unsqueeze(-1)
                weights = (weights * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
        return weights

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.fixed is not None:
            weights = self.fixed.to(hidden.device).expand(hidden.shape[0], -1)
        else:
            weights = self.routing(hidden)
        self.last_weights = weights.detach()
        params = {}
        for index, name in enumerate(self.names):
            base = getattr(self, f"base_{index}")
            vectors = getattr(self, f"vectors_{index}")
            mixed = torch.tensordot(weights, vectors.float(), dims=([1], [0]))
            params[name] = (base.float() + mixed).to(base.dtype)

        def one(sample_params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.mlp, sample_params, (x.unsqueeze(0),)).squeeze(0)

        return vmap(one)(params, hidden)


class WEMoEModel(nn.Module):
    """The merged backbone with weight-ensembling MLPs; one model for every task."""

    def __init__(self, backbone: nn.Module, mask_of: Callable[[torch.Tensor], torch.Tensor | None]):
        super().__init__()
        self.backbone = backbone
        self._mask_of = mask_of
        self._mask: torch.Tensor | None = None

    def token_mask(self) -> torch.Tensor | None:
        return self._mask

    def moe_layers(self) -> list[WeightEnsemblingMLP]:
        return [m for m in self.backbone.modules() if isinstance(m, WeightEnsemblingMLP)]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self._mask = self._mask_of(inputs)
        try:
            return self.backbone(inputs)
        finally:
            self._mask = None


def upscale(
    context: MethodContext, init_lambda: float, depth: int
) -> tuple[WEMoEModel, list[nn.Parameter], int]:
    """The WEMoE model at its initial routers, the routers' parameters, and what it stores
    beyond one model (MLP task vectors + routers)."""
    mixer = TaskVectorMixer(context)
    tasks = mixer.tasks
    shared = mixer.state(torch.full((len(tasks),), float(init_lambda), device=context.device))
    backbone = context.build_model(shared).eval()
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    model = WEMoEModel(backbone, context.token_mask)
    generator = context.generator("wemoe-routers")
    routers: list[nn.Parameter] = []
    stored = 0
    mlps = [
        mlp
        for mlp in feed_forwards(backbone)
        if any(pool_name in mixer.vectors for pool_name in mlp.pool_names.values())
    ]
    if not mlps:
        raise HarnessError(
            "wemoe upscales transformer MLPs (modules named 'mlp', as in CLIP, GPT-2, Llama, "
            "or BERT's intermediate/output pairs) but this suite's backbone has none; pick a "
            "transformer suite"
        )
    for mlp in mlps:
        local = {p: n for p, n in mlp.pool_names.items() if n in mixer.vectors}
        base = {p: mixer.base[n] for p, n in local.items()}
        vectors = {p: mixer.vectors[n] for p, n in local.items()}
        hidden = _input_width(mlp.module)
        router = Router(hidden, len(tasks), depth, init_lambda, generator).to(context.device)
        mlp.install(WeightEnsemblingMLP(mlp.module, base, vectors, router, model.token_mask))
        routers.extend(router.parameters())
        stored += sum(v.numel() for v in vectors.values())
    stored += sum(p.numel() for p in routers)
    return model, routers, int(stored)


def _input_width(mlp: nn.Module) -> int:
    """The hidden size the MLP reads: its first linear layer's input width."""
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            return module.in_features
        weight = getattr(module, "weight", None)
        if weight is not None and weight.dim() == 2:  # GPT-2's Conv1D stores [in, out]
            return weight.shape[0]
    raise HarnessError("wemoe could not find the MLP's input width (no linear layer in it)")


@register_method(
    "wemoe",
    family="routing",
    needs=("batches", "heads"),
    reference="https://arxiv.org/abs/2402.00433",
    params={
        "init_lambda": INIT_LAMBDA,
        "router_hidden_layers": ROUTER_HIDDEN_LAYERS,
        "lr": LR,
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
    },
    smoke={"steps": 3},
    description="Merge all but the MLPs; route each input's MLP weights over task vectors "
    "(routers trained by test-time entropy minimisation).",
)
def wemoe(
    context: MethodContext,
    init_lambda: float,
    router_hidden_layers: int,
    lr: float,
    steps: int,
    batch_size: int,
) -> Solution:
    model, routers, stored = upscale(context, init_lambda, router_hidden_layers)
    tasks = context.tasks
    task_heads = heads(context, tasks)
    streams = {task: unlabeled_stream(context, task, batch_size) for task in tasks}

    def loss(step: int) -> torch.Tensor:
        total = torch.zeros((), device=context.device)
        for task in tasks:
            inputs = next(streams[task]).to(context.device)
            total = total + entropy(task_heads[task](model(inputs)))
        return total

    losses = optimise(routers, loss, steps=steps, lr=lr, progress=context.progress, desc="wemoe")
    for parameter in routers:
        parameter.requires_grad_(False)
    model.eval()
    return Solution(
        task_modules=lambda task: model,  # the same model for every task: task id hidden
        extra_parameters=stored,
        info={
            "reads": "unlabeled test inputs (test-time adaptation); never test labels",
            "moe_layers": len(model.moe_layers()),
            # parameters read per input, in models: the shared weights, the pretrained
            # MLPs, every MLP task vector and the routers (= one model + what it stores)
            "models_per_query": round(1.0 + stored / context.pool.num_parameters(), 4),
            "entropy_first": losses[0] if losses else None,
            "entropy_last": losses[-1] if losses else None,
        },
    )
