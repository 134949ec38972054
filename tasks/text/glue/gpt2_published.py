"""Published glue-gpt2 accuracies (%), shown beside measured ones on the leaderboard.

All from FusionBench's documentation page on its GPT-2 model pool (checked against
``docs/modelpool/gpt2_classification.md`` at FusionBench commit 54c9e8c): the table
"Multi-task model merging methods using GPT-2 models", and, for the pretrained backbone
under each task's head, the λ = 0.0 row of "Task Arithmetic with different scaling
factors" (task arithmetic with λ = 0 is the pretrained model). Task order cola, mnli,
mrpc, qnli, qqp, rte, sst2; every task scored by accuracy on GLUE's validation split
(validation_matched for mnli).

FusionBench's λ for task arithmetic (0.5) and TIES (0.6) are the best rows of its sweeps
over that same scored split; the harness chooses λ on a held-out 10% of train instead.
"""

from __future__ import annotations

from harness.suite import Published

SOURCE = "https://tanganke.github.io/fusion_bench/modelpool/gpt2_classification/"
MAIN_TABLE = "Table: Multi-task model merging methods using GPT-2 models"
SWEEP_TABLE = "Table: Task Arithmetic with different scaling factors (row 0.0)"
CHECKPOINT_SET = "transformers:gpt2"
TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2"]
SWEPT_ON_TEST = "λ is the best of FusionBench's sweep on the scored (GLUE validation) split"


def _row(
    method: str, average: float, values: tuple[float, ...], note: str = "", table: str = ""
) -> Published:
    per_task = dict(zip(TASKS, values, strict=True))
    return Published(
        method, average, SOURCE, CHECKPOINT_SET, per_task, note, table=table or MAIN_TABLE
    )


PUBLISHED_GLUE_GPT2: list[Published] = [
    _row(
        "pretrained",
        44.5,
        (30.9, 33.0, 31.4, 49.2, 63.2, 52.7, 50.9),
        "task arithmetic with λ = 0 (the pretrained backbone under each expert's head)",
        table=SWEEP_TABLE,
    ),
    _row("individual", 82.0, (76.8, 82.1, 80.4, 88.3, 89.6, 65.3, 91.2)),
    _row("weight_average", 56.1, (55.0, 55.1, 51.0, 57.6, 76.7, 44.8, 52.5)),
    _row("fisher", 58.7, (54.8, 58.0, 39.5, 63.3, 81.5, 49.1, 64.7)),
    _row(
        "regmean",
        68.8,
        (61.7, 70.4, 65.4, 69.7, 78.8, 56.0, 79.7),
        "FusionBench's GPT-2 config: α = 0.6, 256 examples per task",
    ),
    _row(
        "task_arithmetic",
        70.0,
        (68.7, 68.6, 69.6, 70.5, 81.8, 47.3, 83.6),
        f"λ = 0.5; {SWEPT_ON_TEST}",
    ),
    _row("ties", 70.0, (68.4, 71.4, 68.4, 69.6, 82.4, 47.7, 81.8), f"λ = 0.6; {SWEPT_ON_TEST}"),
]
