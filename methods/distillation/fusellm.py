"""FuseLLM: knowledge fusion of causal LMs into one student through their token
distributions (Wan et al., ICLR 2024, "Knowledge Fusion of Large Language Models",
https://arxiv.org/abs/2401.10491).

    for each train text t (prompt + answer), every teacher s gives P_s(t) [L, V]:
        CE_s(t) = mean over t's answer tokens of −log P_s(t)[i, y_{i+1}]
        Q(t)    = P_{s*}(t), s* = argmin_s CE_s(t)              (MinCE fusion)
    L = λ · CE(student(t), y) + (1 − λ) · CE(Q(t), student(t)),   λ = 0.9

Paper defaults, kept here: λ = ``lm_weight`` = 0.9; MinCE fusion **per sequence** (the
paper's fusion function takes each source's distribution matrix of a text and returns
the one whose cross-entropy to the gold text is lowest; its released trainer compares
one CE per sequence), ``fusion=token`` is the per-token variant; each source's
distribution kept as its top ``top_k`` = 10 logits (the fused target is the softmax of
the chosen teacher's 10 logits, zero on other tokens); AdamW at lr 1e-5 with weight
decay 0.1 and a cosine schedule (the shared optimiser's defaults).

Teachers are every expert of the pool (FuseLLM's sources), the student starts from the
base (FuseLLM's target LLM is a pretrained model; ``init=ties|task_arithmetic`` starts
from a merge), and it trains through the shared loop (:mod:`harness.distillation`) on
the train split's fine-tuning sequences of all tasks, one batch per task per step, with
the loss on the answer tokens as the experts were fine-tuned (FuseLLM's continual
pre-training takes it on every token of raw text). The suite scores the student like any
merge.

No vocabulary alignment: FuseLLM aligns the sources' tokens to the target's vocabulary
(MinED) because its sources have different tokenizers; here every expert is a fine-tune
of the student's own base and shares its tokenizer, so position i of every teacher
already predicts the same next token as the student's position i.

Deviations: the base is not one of the sources (the paper fuses the target LLM's own
distribution too; here the experts are the knowledge to fuse and the base has none of
theirs); warmup is the shared 10% of the steps.
"""

from __future__ import annotations

from harness.distillation.loop import distil
from harness.distillation.losses import fusellm_loss
from harness.distillation.params import LM_PARAMS, split
from harness.distillation.teachers import Teaching, every_expert
from harness.distillation.tokens import FUSIONS, TokenTargets
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

PARAMS = {
    "lm_weight": Param(
        0.9, help="λ on the causal-LM loss (1 − λ on the fused KD loss)", low=0.0, high=1.0
    ),
    "top_k": Param(
        10, help="logits kept per teacher and token (the fused target's support)", low=1
    ),
    "fusion": Param(
        "sequence", help="MinCE per sequence (the paper) or per token", choices=FUSIONS
    ),
}


@register_method(
    "fusellm",
    family="distillation",
    needs=("batches", "lm"),
    reference="https://arxiv.org/abs/2401.10491",
    params={**PARAMS, **LM_PARAMS},
    smoke={"steps": 3, "batch_size": 16},
    description="One causal LM trained on 0.9·LM + 0.1·CE to the lowest-CE expert's tokens.",
)
def fusellm(
    context: MethodContext, lm_weight: float, top_k: int, fusion: str, **shared
) -> Solution:
    budget, optimiser, rest = split(shared)

    def loss(student_logits, target: TokenTargets):
        device = student_logits.device
        return fusellm_loss(
            student_logits,
            target.gold.to(device),
            target.mask.to(device),
            target.indices.to(device),
            target.probs.to(device),
            lm_weight,
        )

    return distil(
        context,
        name="fusellm",
        teaching=Teaching("tokens", every_expert, top_k=top_k, fusion=fusion),
        loss=loss,
        budget=budget,
        optimiser=optimiser,
        **rest,
    )
