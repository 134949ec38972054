"""SFDA's group-1 zoo as published: fine-tuned accuracies, ImageNet facts, published τ_w.

Fine-tuned top-1 accuracy (%) of each of the 11 torchvision ImageNet models on each of
the 11 targets, after SFDA's protocol (a 20-point lr × weight-decay grid, SGD Nesterov,
cosine schedule, 5,000 steps, best on validation): the table in TencentARC/SFDA
``tw_group1.py`` (https://github.com/TencentARC/SFDA/blob/main/tw_group1.py; the same
numbers as LogME's and SFDA's papers). ImageNet top-1 and parameter counts are
torchvision's documented IMAGENET1K_V1 figures. Published τ_w: SFDA (Shao et al. 2022,
Table 2) and LogME as reported there, per target in ``TARGETS`` order.
"""

from __future__ import annotations

MODELS = (
    "resnet34", "resnet50", "resnet101", "resnet152", "densenet121", "densenet169",
    "densenet201", "mnasnet1_0", "mobilenet_v2", "googlenet", "inception_v3",
)  # fmt: skip
TARGETS = (
    "aircraft", "caltech101", "cars", "cifar10", "cifar100", "dtd", "flowers", "food",
    "pets", "sun397", "voc2007",
)  # fmt: skip

#: target → model → fine-tuned test accuracy (%), SFDA tw_group1.py
FINETUNED: dict[str, dict[str, float]] = {
    target: dict(zip(MODELS, row, strict=True))
    for target, row in {
        "aircraft": (84.06, 84.64, 85.53, 86.29, 84.66, 84.19, 85.38, 66.48, 79.68, 80.32, 80.15),
        "caltech101": (91.15, 91.98, 92.38, 93.1, 91.5, 92.51, 93.14, 89.34, 88.64, 90.85, 92.75),
        "cars": (88.63, 89.09, 89.47, 89.88, 89.34, 89.02, 89.44, 72.58, 86.44, 87.76, 87.74),
        "cifar10": (96.12, 96.28, 97.39, 97.53, 96.45, 96.77, 97.02, 92.59, 94.74, 95.54, 96.18),
        "cifar100": (81.94, 82.8, 84.88, 85.66, 82.75, 84.26, 84.88, 72.04, 78.11, 79.84, 81.49),
        "dtd": (72.96, 74.72, 74.8, 76.44, 74.18, 74.72, 76.04, 70.12, 71.72, 72.53, 72.85),
        "flowers": (95.2, 96.26, 96.53, 96.86, 97.02, 97.32, 97.1, 95.39, 96.2, 95.76, 95.73),
        "food": (81.99, 84.45, 85.58, 86.28, 84.99, 85.84, 86.71, 71.35, 81.12, 79.3, 81.76),
        "pets": (93.5, 93.88, 93.92, 94.42, 93.07, 93.62, 94.03, 91.08, 91.28, 91.38, 92.14),
        "sun397": (61.02, 63.54, 63.76, 64.82, 63.26, 64.1, 64.57, 56.56, 60.29, 59.89, 59.98),
        "voc2007": (84.6, 85.8, 85.68, 86.32, 85.28, 85.77, 85.67, 81.06, 82.8, 82.58, 83.84),
    }.items()
}

#: torchvision IMAGENET1K_V1 top-1 (%) and parameter counts
IMAGENET_TOP1 = dict(
    zip(MODELS, (73.314, 76.130, 77.374, 78.312, 74.434, 75.600, 76.896, 73.456, 71.878,
                 69.778, 77.294), strict=True)
)  # fmt: skip
PARAMETERS = dict(
    zip(MODELS, (21_797_672, 25_557_032, 44_549_160, 60_192_808, 7_978_856, 14_149_480,
                 20_013_928, 4_383_312, 3_504_872, 6_624_904, 27_161_264), strict=True)
)  # fmt: skip

#: published τ_w per target (TARGETS order), REFERENCE.md "Transferability"
PUBLISHED_TAU_W = {
    "sfda": (0.615, 0.737, 0.487, 0.949, 0.866, 0.597, 0.542, 0.815, 0.734, 0.703, 0.763),
    "logme": (0.506, 0.435, 0.576, 0.852, 0.692, 0.647, 0.111, 0.385, 0.411, 0.511, 0.478),
}
