"""Published glue-flan-t5 scores, per checkpoint set, shown beside measured ones.

Source: FusionBench's page on the Flan-T5 text-generation model pool, section
"Experimental Results" (checked against ``docs/modelpool/flan-t5_generation.md`` of
tanganke/fusion_bench, commit 458a71a). Scores: accuracy (%) on GLUE validation
(validation_matched for mnli), Spearman ρ × 100 for stsb; task order cola mnli mrpc qnli
qqp rte sst2 stsb. ``checkpoint_set`` strings equal the suite's ``checkpoint_set``.
"""

from __future__ import annotations

from harness.suite import Published

SOURCE = "https://tanganke.github.io/fusion_bench/modelpool/flan-t5_generation/"
TABLE = "Table: Multi-task model merging methods using Flan-T5-{model} models"
TASKS = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb")

FULL = "full:google/flan-t5-base"
LORA16 = "lora16:google/flan-t5-base"
LARGE_LORA16 = "large-lora16:google/flan-t5-large"


def _rows(checkpoint_set: str, table: str, rows: list[tuple]) -> list[Published]:
    published = []
    for method, scores, average, *note in rows:
        per_task = dict(zip(TASKS, scores, strict=True))
        published.append(
            Published(
                method,
                average,
                SOURCE,
                checkpoint_set,
                per_task,
                note[0] if note else "",
                table=table,
            )
        )
    return published


PUBLISHED_GLUE_FLAN_T5: list[Published] = [
    *_rows(
        FULL,
        TABLE.format(model="Base (full fine-tuned)"),
        [
            ("pretrained", (69.1, 56.5, 76.2, 88.4, 82.1, 80.1, 91.2, 62.2), 75.7),
            ("individual", (75.0, 83.4, 87.5, 91.5, 85.4, 85.9, 93.6, 88.7), 86.4),
            ("weight_average", (69.1, 62.6, 79.4, 89.8, 83.9, 81.2, 91.7, 73.2), 78.9),
            ("task_arithmetic", (70.5, 57.8, 78.4, 90.2, 83.6, 80.5, 92.3, 77.8), 78.9, "λ=0.3"),
            ("ties", (70.3, 65.0, 78.9, 90.2, 83.5, 81.6, 91.7, 78.3), 79.9, "λ=0.3"),
        ],
    ),
    *_rows(
        LORA16,
        TABLE.format(model="Base (LoRA r=16)"),
        [
            ("pretrained", (69.1, 56.5, 76.2, 88.4, 82.1, 80.1, 91.2, 62.2), 75.7),
            ("individual", (69.1, 82.7, 85.5, 90.9, 84.0, 84.4, 92.9, 87.4), 84.6),
            (
                "weight_average",
                (69.7, 59.7, 78.9, 90.1, 83.8, 90.5, 91.2, 72.0),
                78.2,
                "rte 90.5 as printed (above the rte expert's 84.4; the average 78.2 fits 80.5)",
            ),
            (
                "task_arithmetic",
                (68.8, 55.2, 78.7, 89.8, 83.7, 79.1, 91.5, 72.4),
                77.4,
                "λ=0.3; the page's λ sweep peaks at λ=0.2 (78.1) and collapses for λ ≥ 0.5",
            ),
            ("ties", (68.3, 56.3, 79.4, 89.8, 83.7, 79.4, 91.6, 71.2), 77.5, "λ=0.3"),
        ],
    ),
    *_rows(
        LARGE_LORA16,
        TABLE.format(model="Large (LoRA r=16)"),
        [
            ("pretrained", (73.7, 56.6, 82.4, 91.1, 85.5, 85.6, 94.3, 87.5), 82.1),
            ("individual", (80.2, 88.5, 89.2, 94.4, 87.2, 91.7, 95.2, 90.9), 89.6),
            ("weight_average", (74.6, 84.3, 84.1, 92.8, 86.3, 87.4, 94.8, 88.0), 86.5),
            ("task_arithmetic", (76.9, 85.4, 85.3, 93.9, 85.8, 88.1, 95.2, 87.8), 87.3, "λ=0.3"),
            ("ties", (77.1, 85.1, 86.3, 93.9, 86.0, 87.7, 95.1, 88.0), 87.4, "λ=0.3"),
        ],
    ),
]
