"""Published vit8 accuracies (%), per checkpoint set, shown beside measured ones.

Every source is a URL a reader can open: the FusionBench documentation page for the
transformers checkpoints, the papers' arXiv pages for the open_clip task-vectors
checkpoints. ``table`` names the table only where it was checked; where it could not be
checked, the note says so rather than guess. ``checkpoint_set`` strings equal the suite's
``checkpoint_set`` property.
"""

from __future__ import annotations

from harness.suite import Published

# FusionBench's page on the CLIP-ViT model pool (the eight-task checkpoints and results).
# FusionBench's page on the CLIP-ViT model pool, section "Experimental Results": one
# table per architecture (checked against docs/modelpool/clip_vit.md, FusionBench commit
# 54c9e8c, 2026-11-30; every number below appears there, per task and average).
FUSIONBENCH = "https://tanganke.github.io/fusion_bench/modelpool/clip_vit/"
FUSIONBENCH_TABLE = "Table: Multi-task model merging methods using CLIP-ViT-{arch} models"
# AdaMerging (Yang et al., ICLR 2024): its ViT-B/32 comparison with the task-vectors baselines.
ADAMERGING = "https://arxiv.org/abs/2310.02575"
PCB = "https://arxiv.org/abs/2410.02396"  # PCB-Merging (Du et al., NeurIPS 2024)
EMR = "https://arxiv.org/abs/2405.17461"  # EMR-Merging (Huang et al., NeurIPS 2024)
UNCHECKED = "table not confirmed"
NOT_ON_PAGE = (
    "not in the page's table as of FusionBench commit 54c9e8c (nor in the docs' history); "
    "source not confirmed"
)
HF_B32 = "transformers:openai/clip-vit-base-patch32"
HF_B16 = "transformers:openai/clip-vit-base-patch16"
HF_L14 = "transformers:openai/clip-vit-large-patch14"
OC_B32 = "open_clip:ViT-B-32:openai"
OC_L14 = "open_clip:ViT-L-14:openai"

_TASKS = ["sun397", "stanford_cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]


def _per_task(*values: float) -> dict[str, float]:
    return dict(zip(_TASKS, values, strict=True))


def _set(
    checkpoint_set: str,
    source: str,
    rows: list[tuple],
    *,
    caveat: str = UNCHECKED,
    table: str = "",
) -> list[Published]:
    """One source's numbers; ``caveat`` (what could not be checked) ends every note."""
    published = []
    for row in rows:
        method, average = row[0], row[1]
        per_task = row[2] if len(row) > 2 else {}
        note = "; ".join(part for part in (row[3] if len(row) > 3 else "", caveat) if part)
        published.append(
            Published(method, average, source, checkpoint_set, per_task, note, table=table)
        )
    return published


def _fusionbench(checkpoint_set: str, arch: str, rows: list[tuple]) -> list[Published]:
    """A FusionBench table: rows of (method, 8 per-task values, average[, note])."""
    return _set(
        checkpoint_set,
        FUSIONBENCH,
        [(row[0], row[9], _per_task(*row[1:9]), *row[10:]) for row in rows],
        caveat="",
        table=FUSIONBENCH_TABLE.format(arch=arch),
    )


PUBLISHED_VIT8: list[Published] = [
    # per task: SUN397, Cars, RESISC45, EuroSAT, SVHN, GTSRB, MNIST, DTD; then the average
    *_fusionbench(
        HF_B32,
        "B/32",
        [
            ("pretrained", 63.2, 59.8, 60.7, 46.0, 31.6, 32.5, 48.2, 43.9, 48.2),
            ("individual", 75.0, 78.3, 95.2, 99.0, 97.3, 98.9, 99.6, 79.7, 90.3),
            ("ensemble", 64.9, 63.5, 75.7, 93.7, 85.7, 73.8, 93.8, 55.1, 75.8, "simple ensemble"),
            ("weight_average", 65.4, 62.6, 70.8, 76.9, 64.5, 54.9, 86.3, 50.9, 66.5),
            ("fisher", 66.7, 64.0, 72.2, 91.6, 69.0, 64.3, 83.5, 53.7, 70.6),
            ("regmean", 68.6, 70.0, 84.6, 95.4, 92.6, 83.4, 98.4, 66.1, 82.4),
            ("regmean_pp", 69.3, 70.5, 86.7, 96.1, 94.1, 90.4, 99.0, 68.7, 84.4),
            ("task_arithmetic", 57.1, 55.7, 64.9, 76.7, 77.9, 68.5, 96.1, 47.2, 68.0, "λ=0.3"),
            ("ties", 67.1, 64.2, 74.1, 76.8, 77.7, 69.4, 94.1, 54.0, 72.2, "λ=0.3 with sum"),
            ("adamerging", 58.6, 56.9, 69.8, 82.4, 70.3, 58.9, 97.2, 55.3, 68.7, "task-wise"),
            ("adamerging", 67.9, 71.3, 83.5, 92.7, 87.4, 92.9, 98.2, 67.0, 82.6, "layer-wise"),
            ("iso_c", 69.8, 72.9, 86.0, 89.8, 87.6, 92.4, 98.5, 65.5, 82.8, "scaling 1.5"),
            ("iso_cts", 71.1, 74.6, 86.5, 89.0, 83.4, 90.4, 98.1, 68.5, 82.7, "scaling 1.5"),
        ],
    ),
    *_set(
        HF_B32,
        FUSIONBENCH,
        [
            ("tsv", 83.1, _per_task(67.6, 71.6, 84.7, 93.4, 91.9, 92.5, 98.9, 63.8), "TSV-M"),
            ("emr", 87.75),
        ],
        caveat=NOT_ON_PAGE,
    ),
    *_fusionbench(
        HF_B16,
        "B/16",
        [
            ("pretrained", 65.5, 64.6, 66.3, 54.1, 51.9, 43.4, 51.7, 44.9, 55.3),
            ("individual", 78.9, 85.9, 96.6, 99.0, 97.6, 99.0, 99.7, 82.3, 92.3),
            ("weight_average", 68.7, 69.0, 75.0, 83.2, 74.9, 62.5, 93.7, 51.1, 72.3),
            ("fisher", 70.8, 71.8, 76.2, 93.4, 77.4, 61.2, 90.7, 52.3, 74.2),
            ("regmean", 72.6, 78.8, 89.2, 96.3, 94.9, 90.0, 98.8, 67.9, 86.0),
            ("regmean_pp", 72.8, 78.9, 89.3, 97.3, 96.0, 93.0, 99.1, 71.0, 87.2),
            ("task_arithmetic", 65.9, 68.3, 75.4, 84.5, 88.8, 81.9, 98.0, 53.9, 77.1, "λ=0.3"),
            ("ties", 70.6, 71.2, 79.8, 87.5, 83.2, 76.2, 96.4, 55.4, 77.5, "λ=0.3 with sum"),
            ("adamerging", 70.6, 79.6, 86.1, 93.6, 93.5, 95.4, 98.1, 62.9, 85.0, "layer-wise"),
        ],
    ),
    *_fusionbench(
        HF_L14,
        "L/14",
        [
            ("pretrained", 68.3, 77.8, 71.0, 58.9, 58.4, 50.6, 76.4, 55.5, 64.6),
            ("individual", 82.8, 92.9, 97.4, 99.2, 97.9, 99.2, 99.8, 85.5, 94.3),
            ("weight_average", 72.5, 81.5, 82.2, 90.0, 81.6, 74.0, 96.6, 61.8, 80.0),
            ("fisher", 70.6, 79.4, 84.1, 98.1, 74.7, 85.0, 89.5, 61.0, 80.3),
            ("regmean", 76.9, 89.8, 93.0, 97.5, 96.3, 94.1, 98.7, 77.0, 90.4),
            ("regmean_pp", 77.2, 89.6, 92.8, 97.5, 96.9, 96.3, 99.2, 78.4, 91.0),
            ("task_arithmetic", 72.0, 79.0, 80.5, 86.0, 87.5, 83.5, 98.0, 58.8, 80.7, "λ=0.3"),
            ("ties", 74.7, 83.3, 86.4, 91.3, 89.7, 85.2, 97.8, 63.9, 84.0, "λ=0.3 with sum"),
            ("adamerging", 75.8, 80.1, 77.2, 83.6, 68.4, 93.5, 93.1, 69.0, 80.1, "task-wise"),
            ("adamerging", 78.1, 90.7, 90.8, 96.5, 94.8, 97.5, 98.6, 81.3, 91.0, "layer-wise"),
        ],
    ),
    *_set(
        OC_B32,
        ADAMERGING,
        [
            ("pretrained", 48.0),
            ("individual", 90.5),
            ("weight_average", 65.8),
            ("fisher", 68.3),
            ("regmean", 71.8),
            ("task_arithmetic", 69.1),
            ("ties", 72.4),
            ("adamerging", 71.1, {}, "task-wise"),
            ("adamerging", 73.8, {}, "task-wise++"),
            ("adamerging", 80.1, {}, "layer-wise (also reported 80.2)"),
            ("adamerging", 81.1, {}, "layer-wise++ (also reported 81.2)"),
        ],
    ),
    *_set(OC_B32, PCB, [("pcb", 76.3)]),
    *_set(OC_B32, EMR, [("emr", 88.7, _per_task(75.2, 72.8, 93.5, 99.5, 96.9, 98.1, 99.6, 74.4))]),
    *_set(
        OC_L14,
        EMR,
        [
            ("task_arithmetic", 84.5, {}, "baseline in EMR-Merging's ViT-L/14 comparison"),
            ("ties", 86.0, {}, "baseline in EMR-Merging's ViT-L/14 comparison"),
        ],
        caveat="paper and table not confirmed",
    ),
    *_set(OC_L14, EMR, [("emr", 93.7)]),
    *_set(OC_L14, PCB, [("pcb", 87.5)]),
]
