"""Registered methods, one file each, in one folder per family.

    baselines/  reference points every table needs (pretrained, individual experts, ensemble)
    merging/    one model (or per-task states) from the experts' weights
    routing/    per-input or per-task choice among experts or their parts

The registry imports every module below this package, so a new method is one file in its
family's folder with ``@register_method``; each family's ``__init__`` states what its
methods get and return. Every family shares one calling convention (``harness.method``):
``fn(context: MethodContext, **hyperparameters) -> Solution``.
"""
