"""Generated outcome tables for the routing tests: queries in clusters, each cluster with
its own best model, so a router that reads the features can beat every single model."""

from __future__ import annotations

import numpy as np
import torch

from harness.method import MethodContext
from harness.routing.suite import OutcomeSuite
from harness.routing.table import OutcomeTable
from harness.suite import Artifact, SuiteContext

TOPICS = ("cooking", "astronomy", "football", "banking", "poetry", "chemistry")


def generated_table(
    seed: int = 0, queries: int = 600, models: int = 4, dim: int = 8, clusters: int = 4
) -> OutcomeTable:
    """Clustered features; model m is right with probability 0.9 on its favoured
    clusters and 0.2 elsewhere; costs rise with the model index; 60% train, 40% test."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 3.0
    cluster = rng.integers(clusters, size=queries)
    features = (centres[cluster] + rng.normal(size=(queries, dim))).astype(np.float32)
    favoured = np.array(
        [[(c + m) % models == 0 or m == models - 1 for m in range(models)] for c in range(clusters)]
    )
    chance = np.where(favoured[cluster], 0.9, 0.2)
    chance[:, -1] = 0.7  # the costliest model is good everywhere, best nowhere
    scores = (rng.random((queries, models)) < chance).astype(np.float64)
    base = np.geomspace(1.0, 10.0, models)
    costs = base[None, :] * rng.uniform(0.9, 1.1, size=(queries, models))
    splits = np.where(np.arange(queries) < int(0.6 * queries), "train", "test")
    tasks = np.array([f"t{c % 2}" for c in cluster])
    return OutcomeTable(
        models=tuple(f"m{i}" for i in range(models)),
        scores=scores,
        costs=costs,
        tasks=tasks,
        splits=splits,
        features=features,
        # a query's text names its cluster, so a router that reads text can learn it too
        texts=tuple(
            f"a question about {TOPICS[c % len(TOPICS)]}, number {i}" for i, c in enumerate(cluster)
        ),
    )


class TableSuite(OutcomeSuite):
    """An outcome suite over a given table (``options["table"]``)."""

    name = "generated-outcomes"

    def load_table(self) -> OutcomeTable:
        return self.context.options["table"]

    def artifacts(self) -> list[Artifact]:
        return [Artifact("outcomes", "generated", "built")]


def table_context(table: OutcomeTable, seed: int = 0) -> MethodContext:
    suite = TableSuite(SuiteContext(options={"table": table}, progress=False))
    suite.prepare()
    return MethodContext(suite, suite.pool(), torch.device("cpu"), seed=seed, progress=False)
