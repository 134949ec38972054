"""Fitting the small learned routers: feature scaling, seeded minibatch Adam, k-means.

Every draw comes from a generator seeded by the run, so the same seed fits the same
router. Targets are the table's scores in [0, 1], fitted with binary cross-entropy on
soft labels (a fractional score is a probability of being right).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from torch import nn

from harness.progress import progress_bar
from harness.routing.router import Router
from harness.routing.table import OutcomeTable, Queries


class Standardiser(nn.Module):
    """Features centred and scaled by the train rows' statistics (stored as buffers)."""

    def __init__(self, features: np.ndarray) -> None:
        super().__init__()
        mean = features.mean(axis=0)
        std = features.std(axis=0)
        self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(np.where(std > 1e-8, std, 1.0)).float())

    def forward(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        return (x - self.mean) / self.scale


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread while a small router trains: its operators are tiny, and two
    threads on shared cores wait on each other (20x slower measured at load 5 on 2
    cores; see harness/threads.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    parameters: list[torch.nn.Parameter],
    rows: int,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float = 0.0,
    single_thread: bool = True,
    fused: bool = False,
    progress: bool = False,
) -> list[float]:
    """Minimise ``loss_of(batch_rows)`` over seeded minibatches; returns the losses.
    ``single_thread`` suits the small routers (see :func:`one_thread`); a router that
    fine-tunes a transformer keeps torch's threads and takes the ``fused`` AdamW (one
    kernel per step: 10x faster than the per-tensor loop over 22M CPU parameters)."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(
        parameters, lr=lr, weight_decay=weight_decay, fused=True if fused else None
    )
    losses = []
    with one_thread() if single_thread else nullcontext():
        for _ in progress_bar(range(steps), desc="training router", enabled=progress):
            batch = torch.randint(0, rows, (min(batch_size, rows),), generator=generator)
            loss = loss_of(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    return losses


def fit_scores(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: np.ndarray,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float = 0.0,
) -> list[float]:
    """Fit ``model(inputs) → logits [Q, M]`` to per-model scores with soft-label BCE."""
    y = torch.from_numpy(targets.astype(np.float32))
    torch.manual_seed(seed)  # dropout and the like, if any

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(model(inputs[batch]), y[batch])

    model.train()
    losses = fit(
        loss_of,
        list(model.parameters()),
        len(targets),
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        weight_decay=weight_decay,
    )
    model.eval()
    return losses


def kmeans(features: np.ndarray, clusters: int, seed: int, iterations: int = 50) -> np.ndarray:
    """[Q] cluster label of each row: Lloyd's algorithm from k-means++ seeds."""
    rng = np.random.default_rng(seed)
    count = len(features)
    clusters = max(1, min(clusters, count))
    x = features.astype(np.float64)
    centres = [x[rng.integers(count)]]
    for _ in range(1, clusters):
        distance = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        total = distance.sum()
        probabilities = distance / total if total > 0 else np.full(count, 1.0 / count)
        centres.append(x[rng.choice(count, p=probabilities)])
    centre = np.array(centres)
    labels = np.zeros(count, dtype=np.int64)
    for _ in range(iterations):
        distance = ((x[:, None, :] - centre[None]) ** 2).sum(-1)
        new = distance.argmin(axis=1)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for k in range(clusters):
            members = x[labels == k]
            if len(members):
                centre[k] = members.mean(axis=0)
    return labels


def cosine_neighbours(train: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """[Q, k] indices of each query's k most cosine-similar train rows (ties: lower index)."""
    a = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    b = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    k = max(1, min(k, len(train)))
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 1024):
        similarity = b[start : start + 1024] @ a.T
        result[start : start + 1024] = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return result


class PredictorRouter(Router):
    """A router whose utilities are ``sigmoid(net(standardised features))``: the learned
    score predictors (MLP, logistic regression, matrix factorisation)."""

    def __init__(self, train: OutcomeTable, net: nn.Module) -> None:
        super().__init__(train)
        self.standardise = Standardiser(train.features)
        self.net = net

    def logits(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.net(self.standardise(features))

    @torch.no_grad()
    def utilities(self, queries: Queries) -> np.ndarray:
        return torch.sigmoid(self.logits(queries.features)).double().numpy()

    def fit(self, train: OutcomeTable, **settings: float | int) -> list[float]:
        inputs = self.standardise(train.features)
        return fit_scores(self.net, inputs, train.scores, **settings)  # type: ignore[arg-type]
