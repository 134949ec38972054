"""RouterDC (Chen et al., NeurIPS 2024, "RouterDC: query-based router by dual contrastive
learning for assembling large language models"), https://arxiv.org/abs/2409.19886

An encoder E maps a query to a vector; every candidate LLM m has a learned embedding k_m
(initialised N(0, 0.78²)); the router's utility is their cosine similarity, and training
uses two contrastive losses (checked against the paper and the released
train_router_mdeberta.py / router_train.sh of shuhao02/RouterDC):

    sim(x, m) = cos(E(x), k_m) / τ
    sample–LLM:    L₁ = − Σ_{m⁺ ∈ top-K(x)} log  e^{sim(x,m⁺)} /
                         (e^{sim(x,m⁺)} + Σ_{m⁻ ∈ bottom-H(x)} e^{sim(x,m⁻)})
                   (a positive that scored 0 is skipped; a negative that scored above
                   0.5 is left out, as in the released code)
    sample–sample: train queries are clustered by k-means on their embeddings; per
                   query x, x⁺ is a batch query of x's cluster and x⁻ three batch
                   queries of other clusters:
                   L₂ = − log e^{cos(E(x),E(x⁺))/τ} /
                         (e^{cos(E(x),E(x⁺))/τ} + Σ_{x⁻} e^{cos(E(x),E(x⁻))/τ})
    loss:          L₁ + α L₂                    (K = H = 3, α = 1, τ = 1: the script's)

Route: argmax sim − λ·ĉ (λ = 0: RouterDC itself; utilities are similarities, not score
estimates, so λ is on their scale). Deviation: the paper fine-tunes mdeberta-v3-base end
to end (lr 5e-5, 1,000 steps of 16); here E is a two-layer MLP (hidden 256, output 128)
on a frozen encoder's embedding (all-MiniLM-L6-v2 offline; the pretrained model's
features for images), which a 2-core CPU trains in seconds: AdamW lr 1e-3, 500 steps of
64 queries, 5 clusters (choices). With fewer than 6 models K = H = ⌊M/2⌋.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.method import MethodContext, Solution, hash_seed
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries
from harness.routing.training import Standardiser, fit, kmeans

TOP = Param(3, help="K, positive models per query (the top-K by score)", low=1)
BOTTOM = Param(3, help="H, negative models per query (the bottom-H by score)", low=1)
ALPHA = Param(1.0, help="α, weight of the sample–sample loss", low=0.0, grid=[0.0, 1.0])
CLUSTERS = Param(5, help="k-means clusters of the train queries", low=1)
TEMPERATURE = Param(1.0, help="τ, the similarities' temperature", low=1e-6)
NEGATIVES = 3  # H of the sample–sample loss (the released code's default)
STEPS = Param(500, help="AdamW steps", low=0)
LR = Param(1e-3, help="learning rate", low=0.0)


class DualContrastiveRouter(Router):
    def __init__(self, train: OutcomeTable, temperature: float, seed: int) -> None:
        super().__init__(train)
        torch.manual_seed(seed)
        self.standardise = Standardiser(train.features)
        self.encoder = nn.Sequential(
            nn.Linear(train.features.shape[1], 256), nn.GELU(), nn.Linear(256, 128)
        )
        self.model_embeddings = nn.Parameter(torch.randn(len(train.models), 128) * 0.78)
        self.temperature = temperature

    def embed(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(self.standardise(features)), dim=-1)

    def similarities(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        keys = F.normalize(self.model_embeddings, dim=-1)
        return self.embed(features) @ keys.T / self.temperature

    @torch.no_grad()
    def utilities(self, queries: Queries) -> np.ndarray:
        return self.similarities(queries.features).double().numpy()


def sample_llm_loss(sim: torch.Tensor, scores: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    """L₁ over a batch: each top-K model against the bottom-H models of its query. As in
    the released code, a positive that scored 0 is skipped and a negative that scored
    above 0.5 is left out of the denominator."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    negative_index = order[:, -bottom:]
    negative = sim.gather(1, negative_index)
    negative = negative.masked_fill(scores.gather(1, negative_index) > 0.5, float("-inf"))
    negatives = torch.logsumexp(negative, dim=1)  # [B]; -inf when every negative is left out
    loss = sim.new_zeros(())
    for rank in range(top):
        index = order[:, rank : rank + 1]
        positive = sim.gather(1, index).squeeze(1)
        keep = (scores.gather(1, index).squeeze(1) > 0).to(sim.dtype)
        log_p = positive - torch.logaddexp(positive, negatives)
        loss = loss - (log_p * keep).mean()
    return loss


def sample_sample_loss(
    embedded: torch.Tensor,
    clusters: torch.Tensor,
    temperature: float,
    negatives: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """L₂ over a batch: each query against one query of its cluster and ``negatives``
    queries of other clusters, all drawn from the batch (as the released code does;
    a query whose batch holds too few of other clusters is skipped)."""
    sim = embedded @ embedded.T / temperature
    rows, picks = [], []
    for anchor in range(len(clusters)):
        same = torch.nonzero(clusters == clusters[anchor]).squeeze(1)
        other = torch.nonzero(clusters != clusters[anchor]).squeeze(1)
        if len(other) < negatives:
            continue
        positive = same[torch.randint(len(same), (1,), generator=generator)]
        chosen = other[torch.randperm(len(other), generator=generator)[:negatives]]
        rows.append(anchor)
        picks.append(torch.cat([positive, chosen]))
    if not rows:
        return sim.sum() * 0.0
    logits = sim[torch.tensor(rows)].gather(1, torch.stack(picks))
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()


@register_method(
    "routerdc",
    family="routing",
    reference="https://arxiv.org/abs/2409.19886",
    params={
        "top": TOP,
        "bottom": BOTTOM,
        "alpha": ALPHA,
        "clusters": CLUSTERS,
        "temperature": TEMPERATURE,
        "steps": STEPS,
        "lr": LR,
        "willingness": WILLINGNESS,
    },
    needs=("outcomes",),
    smoke={"steps": 60},
    description="Dual contrastive loss: query–LLM (top/bottom models) and query–query.",
)
def routerdc(
    context: MethodContext,
    top: int,
    bottom: int,
    alpha: float,
    clusters: int,
    temperature: float,
    steps: int,
    lr: float,
    willingness: float,
) -> Solution:
    train = training_table(context)
    seed = hash_seed(context.seed, "routerdc")
    models = len(train.models)
    top, bottom = min(top, max(1, models // 2)), min(bottom, max(1, models // 2))
    router = DualContrastiveRouter(train, temperature, seed)
    labels = kmeans(router.standardise(train.features).numpy(), clusters, seed)
    x = router.standardise(train.features)
    scores = torch.from_numpy(train.scores.astype(np.float32))
    cluster_of = torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(seed)

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        embedded = F.normalize(router.encoder(x[batch]), dim=-1)
        keys = F.normalize(router.model_embeddings, dim=-1)
        loss = sample_llm_loss(embedded @ keys.T / temperature, scores[batch], top, bottom)
        if alpha > 0:
            loss = loss + alpha * sample_sample_loss(
                embedded, cluster_of[batch], temperature, NEGATIVES, generator
            )
        return loss

    parameters = [*router.encoder.parameters(), router.model_embeddings]
    router.train()
    losses = fit(loss_of, parameters, len(train), steps=steps, lr=lr, batch_size=64, seed=seed)
    return router_solution(router, willingness, final_loss=losses[-1] if losses else None)
