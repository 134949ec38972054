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
FUSIONBENCH = "https://tanganke.github.io/fusion_bench/modelpool/clip_vit/"
# AdaMerging (Yang et al., ICLR 2024): its ViT-B/32 comparison with the task-vectors baselines.
ADAMERGING = "https://arxiv.org/abs/2310.02575"
PCB = "https://arxiv.org/abs/2410.02396"  # PCB-Merging (Du et al., NeurIPS 2024)
EMR = "https://arxiv.org/abs/2405.17461"  # EMR-Merging (Huang et al., NeurIPS 2024)
UNCHECKED = "table not confirmed"
FUSIONBENCH_UNCHECKED = "number not re-checked against the page"
HF_B32 = "transformers:openai/clip-vit-base-patch32"
HF_L14 = "transformers:openai/clip-vit-large-patch14"
OC_B32 = "open_clip:ViT-B-32:openai"
OC_L14 = "open_clip:ViT-L-14:openai"

_TASKS = ["sun397", "stanford_cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]


def _per_task(*values: float) -> dict[str, float]:
    return dict(zip(_TASKS, values, strict=True))


def _set(
    checkpoint_set: str, source: str, rows: list[tuple], *, caveat: str = UNCHECKED
) -> list[Published]:
    """One source's numbers; ``caveat`` (what could not be checked) ends every note."""
    published = []
    for row in rows:
        method, average = row[0], row[1]
        per_task = row[2] if len(row) > 2 else {}
        note = "; ".join(part for part in (row[3] if len(row) > 3 else "", caveat) if part)
        published.append(Published(method, average, source, checkpoint_set, per_task, note))
    return published


PUBLISHED_VIT8: list[Published] = [
    *_set(
        HF_B32,
        FUSIONBENCH,
        [
            ("pretrained", 48.2),
            ("individual", 90.3),
            ("ensemble", 75.8, {}, "output ensemble"),
            ("weight_average", 66.5),
            ("fisher", 70.6),
            ("regmean", 82.4),
            ("regmean_pp", 84.4),
            (
                "task_arithmetic",
                68.0,
                _per_task(57.1, 55.7, 64.9, 76.7, 77.9, 68.5, 96.1, 47.2),
                "λ=0.3",
            ),
            (
                "ties",
                72.2,
                _per_task(67.1, 64.2, 74.1, 76.8, 77.7, 69.4, 94.1, 54.0),
                "λ=0.3, top 20%",
            ),
            ("adamerging", 68.7, {}, "task-wise"),
            ("adamerging", 82.6, {}, "layer-wise"),
            ("iso_c", 82.8),
            ("iso_cts", 82.7),
            ("tsv", 83.1, _per_task(67.6, 71.6, 84.7, 93.4, 91.9, 92.5, 98.9, 63.8), "TSV-M"),
            ("emr", 87.75),
        ],
        caveat=FUSIONBENCH_UNCHECKED,
    ),
    *_set(
        HF_L14,
        FUSIONBENCH,
        [
            ("pretrained", 64.6),
            ("individual", 94.3),
            ("weight_average", 80.0),
            ("task_arithmetic", 80.7),
            ("ties", 84.0),
            ("adamerging", 91.0, {}, "layer-wise"),
            ("regmean", 90.4),
        ],
        caveat=FUSIONBENCH_UNCHECKED,
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
