"""Outcome tables built offline from the harness's own experts: ``mini8-outcomes``,
``minitext-outcomes`` and ``minimath-outcomes``.

Candidates: a suite's pretrained model and its experts (mini8: 9 models; minitext: 8),
each scored item by item on every task with that task's frozen head
(:mod:`harness.routing.experts`). A router reads the pretrained model's output for the
item: for mini8's images, which have no text, the pretrained tower's feature vector; for
minitext's sentences, all-MiniLM-L6-v2's sentence embedding. Rows: the suite's
``validation`` items (held out from fine-tuning and from the heads) are the routers'
``train`` rows, a fixed 10% of them ``validation``; its ``test`` items are ``test``.
Cost: parameters per query of the answering model (its network + the task's head). All
candidates share one architecture, so every one costs the same and the λ sweep cannot
trade quality for cost: a router's curve is one point and its AIQ its accuracy. What
routing buys here is accuracy on a task-mixed stream with the task hidden, against one
model for everything (best_single) and the oracle; the leaderboard places the source
suite's merges and its task-id oracle (``individual``) beside the routers.

``minimath-outcomes`` is the generative counterpart: minimath's pretrained causal LM and
its three experts (math, lang2, kind) generate for every item of its four tasks through
lm-eval, as minimath's own evaluation does, and an item scores 1 when strict-match exact
match is 1 in lm-eval's per-sample log (:func:`harness.routing.experts.score_lm_experts`);
a router reads the pretrained LM's hidden state averaged over the prompt's tokens.
"""

from __future__ import annotations

from typing import ClassVar

from harness.cache import cached_directory, content_key, file_sha256
from harness.progress import note
from harness.registry import register_suite
from harness.routing.experts import read_table, score_experts, score_lm_experts
from harness.routing.suite import OutcomeSuite
from harness.routing.table import OutcomeTable
from harness.suite import Artifact, ClassificationSuite, SuiteContext


class ExpertOutcomes(OutcomeSuite):
    """A classification suite's pretrained model and experts × every item of its tasks."""

    source: ClassVar[str]  # the registered classification suite the table is built from
    #: bump when what the table holds changes (minitext 2: the items' texts)
    version: ClassVar[int] = 1
    cost_unit = "parameters per query"
    splits = {
        "train": "the source suite's validation items (held out from fine-tuning), minus "
        "a 10% carve",
        "validation": "a fixed 10% of the source suite's validation items",
        "test": "the source suite's test items",
    }

    @property
    def checkpoint_set(self) -> str:
        return getattr(self, "_checkpoint_set", f"built:{self.name}")

    #: scores every model on every item: ``score_experts`` (heads) or ``score_lm_experts``
    scorer: ClassVar = staticmethod(score_experts)

    def _source_suite(self) -> ClassificationSuite:
        from harness.registry import SUITES

        entry = SUITES.get(self.source)
        suite = entry.obj(
            SuiteContext(
                mirror=self.context.mirror,
                cache_dir=self.context.cache_dir,
                device=self.context.device,
                seed=self.context.seed,
                progress=self.context.progress,
                options=entry.resolve_params({}),
            )
        )
        suite.prepare()
        return suite

    def load_table(self) -> OutcomeTable:
        source = self._source_suite()
        self._source = source
        self._checkpoint_set = f"{source.checkpoint_set}/outcomes-v{self.version}"
        key = content_key(f"{self.source}-outcomes", self.version, source.checkpoint_set)
        self.root = cached_directory(
            key,
            lambda directory: type(self).scorer(
                source, {"validation": "train", "test": "test"}, directory
            ),
            namespace=f"{self.source}-outcomes",
            on_wait=lambda: note(f"waiting for another process building {self.name}"),
        )
        return read_table(self.root)

    def artifacts(self) -> list[Artifact]:
        table = self.root / "outcomes.safetensors"
        return [
            *self._source.artifacts(),  # what the table was scored from
            Artifact("outcomes", f"harness/{self.name}", "built", sha256=file_sha256(table)),
        ]


@register_suite(
    "mini8-outcomes",
    reference="https://arxiv.org/abs/2403.12031",
    description="mini8's pretrained model and 8 experts scored per item on every task: "
    "routers over a real outcome table, offline.",
)
class Mini8Outcomes(ExpertOutcomes):
    source = "mini8"
    merge_suite = "mini8"  # its merges are drawn beside the routers (leaderboard)


@register_suite(
    "minitext-outcomes",
    reference="https://arxiv.org/abs/2403.12031",
    description="minitext's pretrained MiniLM and 7 experts scored per sentence on every "
    "task: routers over a real text outcome table, offline.",
)
class MinitextOutcomes(ExpertOutcomes):
    source = "minitext"
    version = 2
    merge_suite = "minitext"


@register_suite(
    "minimath-outcomes",
    reference="https://arxiv.org/abs/2403.12031",
    description="minimath's pretrained causal LM and 3 experts scored per item through "
    "lm-eval on every task: routers over a generative outcome table, offline.",
)
class MinimathOutcomes(ExpertOutcomes):
    source = "minimath"
    merge_suite = "minimath"
    scorer = staticmethod(score_lm_experts)
