"""RouterDC as the paper trains it (Chen et al., NeurIPS 2024), https://arxiv.org/abs/2409.19886:
the query encoder itself is fine-tuned, end to end, by the dual contrastive loss.

    h(x)       = E(x)[CLS]                       E: mdeberta-v3-base, first token's state
    sim(x, m)  = cos(h(x), k_m) / τ              k_m ~ N(0, 0.78²), one per candidate LLM
    L₁         = sample–LLM loss (top-K positives against the bottom-H negatives)
    L₂         = sample–sample loss over clusters of the train queries
    minimise   L₁ + α L₂ over E's weights and the k_m (AdamW lr 5e-5, 1,000 steps of 16)
    route      argmax_m sim(x, m) − λ·ĉ_m

Defaults are the released ``router_train.sh`` (K = H = 3, τ = 1, cluster-loss weight 1,
sample-loss weight 0, lr 5e-5, 1,000 steps, batch 16, 512 tokens truncated from the left).
The clusters: the released data carries k-means (8) labels of t-SNE-reduced mdeberta
states; here k-means (8) runs on the pretrained encoder's [CLS] states of the train
queries directly (no t-SNE). The losses are ``routerdc``'s (that file's docstring has the
equations and their checks). ``routerdc`` is the cheap variant: a small MLP on the
suite's frozen query features, which needs no text and trains in seconds on a CPU.

Offline, ``--set encoder=sentence-transformers/all-MiniLM-L6-v2`` fine-tunes the MiniLM
that a harness dependency ships (see harness/routing/encoder.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from harness.errors import HarnessError
from harness.method import MethodContext, Solution, hash_seed
from harness.progress import progress_bar
from harness.registry import Param, register_method
from harness.routing.encoder import PACKAGED_MINILM, QueryEncoder, encoder_directory
from harness.routing.router import WILLINGNESS, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries
from harness.routing.training import fit, kmeans
from methods.routing.routerdc import (
    BOTTOM,
    NEGATIVES,
    TEMPERATURE,
    TOP,
    sample_llm_loss,
    sample_sample_loss,
)

ENCODER = Param(
    "microsoft/mdeberta-v3-base",
    help="the query encoder fine-tuned end to end: a hub id (mirror or hub) or a directory",
)
ALPHA = Param(1.0, help="α, weight of the sample–sample (cluster) loss", low=0.0)
CLUSTERS = Param(8, help="k-means clusters of the train queries' pretrained states", low=1)
STEPS = Param(1000, help="AdamW steps", low=0)
LR = Param(5e-5, help="learning rate", low=0.0)
BATCH_SIZE = Param(16, help="queries per step", low=1)
MAX_LENGTH = Param(512, help="tokens per query (truncated from the left)", low=8)
EMBEDDING_STD = 0.78  # the released code's initialisation of the model embeddings
WEIGHT_DECAY = 0.01  # torch AdamW's default, which the released script keeps
ENCODE_BATCH = 64  # queries per forward pass when not training


class FinetunedDualContrastiveRouter(Router):
    def __init__(self, train: OutcomeTable, encoder: QueryEncoder, temperature: float) -> None:
        super().__init__(train)
        self.encoder = encoder
        self.model_embeddings = torch.nn.Parameter(
            torch.randn(len(train.models), encoder.width) * EMBEDDING_STD
        )
        self.temperature = temperature

    def embed(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(self.encoder(texts), dim=-1)

    def similarities(self, embedded: torch.Tensor) -> torch.Tensor:
        keys = F.normalize(self.model_embeddings, dim=-1).to(embedded.device)
        return embedded @ keys.T / self.temperature

    @torch.no_grad()
    def states(self, texts: tuple[str, ...], progress: bool = False) -> torch.Tensor:
        """[Q, width] unit-norm query states, in batches."""
        starts = list(range(0, len(texts), ENCODE_BATCH))
        parts = [
            self.embed(list(texts[start : start + ENCODE_BATCH])).float().cpu()
            for start in progress_bar(starts, desc="encoding queries", enabled=progress)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, self.encoder.width)

    @torch.no_grad()
    def utilities(self, queries: Queries) -> np.ndarray:
        if queries.texts is None:
            raise HarnessError("routerdc_finetune routes query texts; these queries have none")
        self.eval()
        return self.similarities(self.states(queries.texts)).double().numpy()


@register_method(
    "routerdc_finetune",
    family="routing",
    reference="https://arxiv.org/abs/2409.19886",
    params={
        "encoder": ENCODER,
        "top": TOP,
        "bottom": BOTTOM,
        "alpha": ALPHA,
        "clusters": CLUSTERS,
        "temperature": TEMPERATURE,
        "steps": STEPS,
        "lr": LR,
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
        "willingness": WILLINGNESS,
    },
    needs=("outcomes",),
    smoke={"encoder": PACKAGED_MINILM, "steps": 20, "lr": 1e-4, "max_length": 16},
    description="RouterDC with its query encoder fine-tuned end to end (the paper's recipe).",
)
def routerdc_finetune(
    context: MethodContext,
    encoder: str,
    top: int,
    bottom: int,
    alpha: float,
    clusters: int,
    temperature: float,
    steps: int,
    lr: float,
    batch_size: int,
    max_length: int,
    willingness: float,
) -> Solution:
    train = training_table(context)
    if train.texts is None:
        raise HarnessError(
            f"routerdc_finetune fine-tunes a text encoder, and suite {context.suite.name!r} "
            "has no query texts; use routerdc (an MLP on the suite's query features)"
        )
    directory = encoder_directory(encoder, context.suite.context.mirror)
    seed = hash_seed(context.seed, "routerdc_finetune")
    torch.manual_seed(seed)  # the model embeddings' draw
    router = FinetunedDualContrastiveRouter(
        train, QueryEncoder(directory, max_length), temperature
    ).to(context.device)
    models = len(train.models)
    top, bottom = min(top, max(1, models // 2)), min(bottom, max(1, models // 2))
    texts = list(train.texts)
    pretrained = router.states(train.texts, progress=context.progress).numpy()
    cluster_of = torch.from_numpy(kmeans(pretrained, clusters, seed))
    scores = torch.from_numpy(train.scores.astype(np.float32)).to(context.device)
    generator = torch.Generator().manual_seed(seed)

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        embedded = router.embed([texts[i] for i in batch.tolist()])
        loss = sample_llm_loss(router.similarities(embedded), scores[batch], top, bottom)
        if alpha > 0:
            loss = loss + alpha * sample_sample_loss(
                embedded, cluster_of[batch], temperature, NEGATIVES, generator
            )
        return loss

    router.train()
    losses = fit(
        loss_of,
        list(router.parameters()),
        len(train),
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        weight_decay=WEIGHT_DECAY,
        single_thread=False,
        fused=True,
        progress=context.progress,
    )
    return router_solution(
        router,
        willingness,
        final_loss=losses[-1] if losses else None,
        encoder=encoder,
        encoder_directory=str(directory),
    )
