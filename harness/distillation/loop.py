"""The distillation training loop that every distillation method runs.

    student θ ← init (pretrained, or a merge)
    for each step s < steps:
        for each task t: one planned train batch x_t (inputs only, unless a label term;
                         the tasks' batches go through the student in one call)
            out_t = head_t(f(x_t; θ))   (logit targets)   or   f(x_t; θ)   (features)
            L_t   = (1 − α) · loss(out_t, target_t(x_t)) + α · CE(head_t(f(x_t; θ)), y_t)
        θ ← AdamW step on (1/T) Σ_t L_t, learning rate on a linear-warmup + cosine schedule

Causal LMs (``Teaching.target == "tokens"``) have no heads: out_t is the student's
next-token logits and target_t the teachers' fused token distributions
(:mod:`harness.distillation.tokens`), which carry the gold tokens the loss also reads.

The student is ONE backbone for every task (the task id picks the frozen head, during
training and when the suite scores it, as for every merge). Teacher targets are computed
once per planned batch (:mod:`harness.distillation.teachers`). The same seed gives the
same student: batch order comes from ``context.generator`` and the global RNG (dropout)
is seeded for the loop and restored afterwards. What the run cost (wall, CPU and GPU
seconds, examples seen by the student and by the teachers) goes into
``Solution.info["distillation"]``, which the runner records as ``method_info``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from harness.distillation.batching import forward_batches
from harness.distillation.budget import Budget, plan
from harness.distillation.student import initial_state
from harness.distillation.teachers import Teaching, teacher_targets
from harness.distillation.tokens import lm_logits
from harness.errors import HarnessError
from harness.merging.coefficients import heads
from harness.method import MethodContext, Solution, hash_seed
from harness.progress import progress_bar

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Optimiser:
    """AdamW with a linear warmup over ``warmup`` × steps, then cosine decay to zero."""

    lr: float
    weight_decay: float
    warmup: float  # fraction of the steps

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def warmup_cosine(steps: int, warmup: float) -> Callable[[int], float]:
    """The learning-rate factor of step ``s`` (0-based): (s+1)/W for s < W, then a cosine
    from 1 down towards 0 over the remaining steps."""
    warm = int(round(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class Clock:
    """Wall, process-CPU and (on CUDA) GPU-busy seconds of a stretch of work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Clock:
        self._sync()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def gpu_s(self) -> float | None:
        """Wall seconds with the GPU as the compute device (synchronised), None on CPU."""
        return self.wall_s if self.device.type == "cuda" else None


def distil(
    context: MethodContext,
    *,
    name: str,
    teaching: Teaching,
    loss: Loss,
    budget: Budget,
    optimiser: Optimiser,
    init: str,
    init_scaling: float,
    label_weight: float = 0.0,
) -> Solution:
    """Train one student from the pool's experts within ``budget``; see the module doc."""
    with Clock(context.device) as init_clock:
        state, init_info = initial_state(context, init, init_scaling)
    info: dict[str, Any] = {
        "init": init_info,
        "budget": budget.to_json(),
        "optimiser": optimiser.to_json(),
        "target": teaching.target,
        "inference_models": 1,
        "teacher_models": len(context.pool.tasks),
    }
    costs: dict[str, Any] = {
        "steps": budget.steps,
        "examples_seen": 0,
        "teacher_forward_examples": 0,
        "distinct_examples": 0,
        "init_s": init_clock.wall_s,
        "teacher_s": 0.0,
        "train_s": 0.0,
        "cpu_s": init_clock.cpu_s,
        "gpu_s": init_clock.gpu_s,
        "device": str(context.device),
    }
    info["distillation"] = costs
    if budget.steps == 0:
        return Solution(state=state, info=info)

    with Clock(context.device) as teacher_clock:
        data = plan(context, budget)
        targets = teacher_targets(context, teaching, data)
    info["teachers"] = targets.teachers
    if targets.choices is not None:
        info["fused_teacher_share"] = targets.choices
    costs["teacher_forward_examples"] = targets.forward_examples
    costs["distinct_examples"] = sum(
        len(task.batches[index][0]) for task in data.values() for index in task.used
    )

    language_model = teaching.target == "tokens"
    if language_model and label_weight > 0:
        raise HarnessError(
            "label_weight mixes in class labels; a causal-LM target already carries its gold "
            "tokens (set the method's LM weight instead)"
        )
    task_heads = {} if language_model else heads(context, context.tasks)
    names = set(context.pool.names)
    with Clock(context.device) as train_clock:
        student = context.build_model(state)
        trainable = [p for p in student.parameters() if p.is_floating_point()]
        optimizer = torch.optim.AdamW(
            trainable, lr=optimiser.lr, weight_decay=optimiser.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(budget.steps, optimiser.warmup)
        )
        devices = [context.device] if context.device.type == "cuda" else []
        losses: list[float] = []
        seen = 0
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(hash_seed(context.seed, f"distillation:{name}"))
            student.train()
            bar = progress_bar(range(budget.steps), desc=name, enabled=context.progress)
            for step in bar:
                optimizer.zero_grad(set_to_none=True)
                indices = [data[task].order[step] for task in context.tasks]
                batches = [data[t].batches[i] for t, i in zip(context.tasks, indices)]
                inputs = [x for x, _ in batches]
                run = lm_logits(student) if language_model else student
                outputs = forward_batches(run, inputs, context.device)  # one call
                total = torch.zeros((), device=context.device)
                for task, index, features, (x, labels) in zip(
                    context.tasks, indices, outputs, batches
                ):
                    logits = features if language_model else task_heads[task](features)
                    output = features if teaching.target == "features" else logits
                    term = loss(output, targets.outputs[(task, index)])
                    if label_weight > 0:
                        hard = F.cross_entropy(logits.float(), labels.to(context.device))
                        term = (1.0 - label_weight) * term + label_weight * hard
                    total = total + term / len(context.tasks)
                    seen += len(x)
                total.backward()
                optimizer.step()
                scheduler.step()
                losses.append(float(total.detach()))
            student.eval()
        learned = {k: v.detach().cpu() for k, v in student.state_dict().items() if k in names}
    costs.update(
        examples_seen=seen,
        teacher_s=teacher_clock.wall_s,
        train_s=train_clock.wall_s,
        cpu_s=init_clock.cpu_s + teacher_clock.cpu_s + train_clock.cpu_s,
        gpu_s=(
            init_clock.gpu_s + teacher_clock.gpu_s + train_clock.gpu_s
            if context.device.type == "cuda"
            else None
        ),
        epochs=max(budget.steps / len(task.batches) for task in data.values()),
    )
    info["loss_first"], info["loss_last"] = losses[0], losses[-1]
    return Solution(state=context.pool.output_state(learned), info=info)
