"""Twin-Merging (Lu et al., NeurIPS 2024, "Twin-Merging: dynamic integration of modular
expertise in model merging"), https://arxiv.org/abs/2406.15479

Knowledge is split into a shared part and an exclusive part per expert; the exclusive
parts are compressed with a truncated SVD and mixed back in per input by a router:

    shared:     θ_s = θ_0 + λ Σ_t τ_t                        (task arithmetic, λ = 0.3)
    exclusive:  E_t = θ_t − θ_s,  compressed per weight matrix to rank r:
                E_t ≈ U_r Σ_r V_rᵀ   (stored as A_t = U_r Σ_r, B_t = V_rᵀ)
    router:     w(x) = softmax(R(f(x; θ_s))) ∈ Δ^T, R a small MLP trained on the tasks'
                validation inputs to tell which task an input comes from
    inference:  θ(x) = θ_s + Σ_t w_t(x) E_t                  (per input)

Checked against the paper's abstract and summaries: shared knowledge from a standard
merge (task arithmetic or TIES), exclusive knowledge = expert minus shared, SVD
compression, and an input-conditioned router trained on a small validation set that
fuses shared and exclusive knowledge dynamically at test time.

Per-input routing without building a model per input: a linear layer's output under
θ(x) is x W_sᵀ + Σ_t w_t(x) (x B_tᵀ) A_tᵀ (+ the routed bias), a sum of low-rank
adapters; LayerNorm scales and shifts are routed the same way (stored dense, they are
vectors). Linear layers include GPT-2's ``Conv1D`` (weight stored [in, out]; its
exclusive part is factored in the [out, in] layout like ``nn.Linear``'s). Other tensors
(embeddings, convolutions) keep the shared value. The router's
features come from a first pass of the shared model. Implementation choices (the
paper's were not confirmed for this setting): rank 16, a 2-layer MLP router (hidden
256) trained with Adam (lr 1e-2, 300 steps, batches of 64 cached features).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.merging.statistics import is_linear, out_in, stored_layout
from harness.merging.stream import stack
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

SCALING = Param(0.3, help="λ of the shared task-arithmetic merge", low=0.0, high=2.0)
RANK = Param(16, help="r, the SVD rank kept of each exclusive weight matrix", low=1)
STEPS = Param(300, help="router training steps", low=0)
LR = Param(1e-2, help="router Adam learning rate", low=0.0)
HIDDEN = Param(256, help="router hidden width", low=1)
BATCH_SIZE = Param(64, help="router training batch size", low=1)


def low_rank(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with A B the best rank-``rank`` approximation of ``matrix`` (Eckart–Young)."""
    u, s, vh = torch.linalg.svd(matrix.float(), full_matrices=False)
    r = min(rank, s.numel())
    return (u[:, :r] * s[:r]).contiguous(), vh[:r].contiguous()


class TwinModel(nn.Module):
    """The shared backbone plus routed exclusive knowledge, computed per input."""

    def __init__(
        self,
        shared: nn.Module,
        router: nn.Module,
        factors: dict[
            str, tuple[torch.Tensor, torch.Tensor]
        ],  # weight name → ([T,out,r], [T,r,in])
        dense: dict[str, torch.Tensor],  # vector name → [T, *shape]
    ) -> None:
        super().__init__()
        self.shared = shared
        self.router = router
        self.factors = factors
        self.dense = dense
        self.routing: torch.Tensor | None = None  # [B, T] while a routed pass runs
        self.fixed: torch.Tensor | None = None  # force routing weights (tests, analysis)
        modules = dict(shared.named_modules())
        for weight in factors:
            module = modules[weight.rsplit(".", 1)[0]]
            module.register_forward_hook(self._linear_hook(weight))
        for name in {n.rsplit(".", 1)[0] for n in dense}:
            if isinstance(modules[name], nn.LayerNorm):
                modules[name].register_forward_hook(self._norm_hook(name))

    def route(self, inputs: torch.Tensor) -> torch.Tensor:
        """w(x): softmax of the router on the shared model's features, [B, T]."""
        self.routing = None
        return torch.softmax(self.router(self.shared(inputs)), dim=-1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        weights = self.route(inputs) if self.fixed is None else self.fixed
        self.routing = weights.expand(inputs.shape[0], -1)
        try:
            return self.shared(inputs)
        finally:
            self.routing = None

    def _mix(self, per_task: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Σ_t w_t(x) v_t for per-task vectors [T, d], broadcast over ``like``'s tokens."""
        mixed = self.routing @ per_task.to(like.dtype)  # [B, d]
        return mixed.view(mixed.shape[0], *([1] * (like.dim() - 2)), mixed.shape[-1])

    def _linear_hook(self, weight: str):
        bias = weight.rsplit(".", 1)[0] + ".bias"

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            if self.routing is None:
                return None
            x = inputs[0]
            a, b = self.factors[weight]
            hidden = torch.einsum("b...i,tri->b...tr", x, b.to(x.dtype))
            shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (self.routing.shape[1], 1)
            hidden = hidden * self.routing.view(shape).to(x.dtype)
            delta = torch.einsum("b...tr,tor->b...o", hidden, a.to(x.dtype))
            if bias in self.dense:
                delta = delta + self._mix(self.dense[bias], output)
            return output + delta

        return hook

    def _norm_hook(self, name: str):
        def hook(module: nn.LayerNorm, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            if self.routing is None:
                return None
            x = inputs[0]
            normed = nn.functional.layer_norm(x, module.normalized_shape, eps=module.eps)
            delta = torch.zeros_like(output)
            if f"{name}.weight" in self.dense:
                delta = delta + normed * self._mix(self.dense[f"{name}.weight"], output)
            if f"{name}.bias" in self.dense:
                delta = delta + self._mix(self.dense[f"{name}.bias"], output)
            return output + delta

        return hook

    def dense_state(self, index: int) -> dict[str, torch.Tensor]:
        """θ_s + E_t (E_t as stored: low rank for matrices) for expert ``index``."""
        state = {n: t.detach().clone() for n, t in self.shared.state_dict().items()}
        modules = dict(self.shared.named_modules())
        for name, (a, b) in self.factors.items():
            delta = stored_layout(a[index] @ b[index], modules[name.rsplit(".", 1)[0]])
            state[name] = state[name] + delta.to(state[name].dtype)
        for name, vectors in self.dense.items():
            state[name] = state[name] + vectors[index].to(state[name].dtype)
        return state


def train_router(
    context: MethodContext,
    shared: nn.Module,
    tasks: Sequence[str],
    *,
    hidden: int,
    steps: int,
    lr: float,
    batch_size: int,
) -> tuple[nn.Module, float]:
    """An MLP that predicts the task of a validation input from shared features."""
    features, labels = [], []
    with torch.no_grad():
        for index, task in enumerate(tasks):
            for inputs, _ in context.labeled_batches(task, "validation", batch_size=256):
                features.append(shared(inputs.to(context.device)).float())
                labels.append(torch.full((inputs.shape[0],), index, dtype=torch.long))
    features_all = torch.cat(features)
    labels_all = torch.cat(labels).to(context.device)
    torch.manual_seed(context.seed)  # router initialisation follows the run seed
    router = nn.Sequential(
        nn.Linear(features_all.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, len(tasks))
    ).to(context.device)
    optimizer = torch.optim.Adam(router.parameters(), lr=lr)
    generator = context.generator("twin-router")
    for _ in range(steps):
        pick = torch.randint(0, features_all.shape[0], (batch_size,), generator=generator)
        pick = pick.to(context.device)
        loss = nn.functional.cross_entropy(router(features_all[pick]), labels_all[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (router(features_all).argmax(-1) == labels_all).float().mean().item()
    return router.eval(), 100.0 * accuracy


@register_method(
    "twin",
    family="routing",
    needs=("batches", "features"),
    reference="https://arxiv.org/abs/2406.15479",
    params={
        "scaling": SCALING,
        "rank": RANK,
        "steps": STEPS,
        "lr": LR,
        "hidden": HIDDEN,
        "batch_size": BATCH_SIZE,
    },
    smoke={"steps": 20},  # fewer steps/examples for the contract tests only
    description="Shared merge plus SVD-compressed exclusive knowledge, routed per input.",
)
def twin(
    context: MethodContext,
    scaling: float,
    rank: int,
    steps: int,
    lr: float,
    hidden: int,
    batch_size: int,
) -> Solution:
    pool = context.pool
    tasks = pool.tasks
    shape_model = context.build_model(pool.base_state())
    modules = dict(shape_model.named_modules())
    # nn.Linear and GPT-2's Conv1D (weight stored [in, out]; factored in [out, in])
    linear = {f"{n}.weight": m for n, m in modules.items() if is_linear(m)}
    vectors = {
        f"{n}.{p}"
        for n, m in modules.items()
        if is_linear(m) or isinstance(m, nn.LayerNorm)
        for p in ("weight", "bias")
        if getattr(m, p, None) is not None
    } - set(linear)
    shared_state: dict[str, torch.Tensor] = {}
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    dense: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for group in pool.groups(seed=context.seed):
            shared_value = group.base + scaling * stack(group.task_vectors).sum(dim=0)
            shared_state[group.name] = shared_value
            exclusive = [expert - shared_value for expert in group.experts]
            if group.name in linear:
                pairs = [low_rank(out_in(e, linear[group.name]), rank) for e in exclusive]
                factors[group.name] = (
                    torch.stack([a for a, _ in pairs]).to(context.device),
                    torch.stack([b for _, b in pairs]).to(context.device),
                )
            elif group.name in vectors:
                dense[group.name] = torch.stack(exclusive).to(context.device)
    del shape_model
    shared = context.build_model(pool.output_state(shared_state))
    router, router_accuracy = train_router(
        context, shared, tasks, hidden=hidden, steps=steps, lr=lr, batch_size=batch_size
    )
    model = TwinModel(shared, router, factors, dense).eval()
    stored = sum(a.numel() + b.numel() for a, b in factors.values())
    stored += sum(v.numel() for v in dense.values())
    stored += sum(p.numel() for p in router.parameters())
    return Solution(
        task_modules=lambda task: model,
        extra_parameters=stored,
        info={
            "rank": rank,
            "routed_matrices": len(factors),
            "routed_vectors": len(dense),
            "router_validation_accuracy": router_accuracy,
            # per input: the shared model's pass for the router, then the shared model's
            # pass with every expert's routed low-rank parts (what it stores beyond it)
            "models_per_query": round(2.0 + stored / pool.num_parameters(), 4),
        },
    )
