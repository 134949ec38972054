"""Layer swapping (Bandarkar et al., ICLR 2025, "Layer Swapping for Zero-Shot
Cross-Lingual Transfer in Large Language Models", arXiv 2410.01335).

Two experts of one base: a *math* expert (task SFT in the high-resource language) and a
*language* expert (generic SFT in the target language). The merged model is the math
expert with its bottom ``bottom`` and top ``top`` transformer layers replaced by the
language expert's, and ``transition`` layers on the inner side of each swapped block
set to the uniform average of the two experts (the paper's transition zone, which
buffers the swapped layers from the math layers). With L layers, layer i is

    language          i < bottom                        or  i ≥ L − top
    average           bottom ≤ i < bottom + transition  or  L − top − transition ≤ i < L − top
    math              otherwise

(no upper transition zone when ``top`` is 0). At least one layer must stay the math
expert's. The counts are hyperparameters chosen on validation (the paper tunes them per
language on a small grid); the grid here suits the small models of minimath and is
overridden with ``--set`` for larger ones (every grid point leaves a math layer in a
model of six layers or more).

Tensors outside the layers: the token embeddings come from the expert ``embeddings``
names (the language expert by default: the input end belongs to the language, as in the
paper's Figure 1, where the swapped bottom block starts at the input), so ``bottom = 0``
swaps the embedding layer alone; the final norm and LM head follow layer L − 1 (the
language expert's when ``top`` > 0, else the math expert's). The paper's text on the
non-transformer parameters could not be checked offline; this is our reading, stated
here rather than claimed as the paper's.

Which pool expert plays which part comes from the suite's ``roles`` (``{"math": ...,
"language": ...}``) unless ``math_expert`` / ``language_expert`` name them; a suite
without roles (``provides`` "roles") is refused in one line before anything loads. Layers
are found by the Llama/Mistral/Qwen naming ``...layers.<i>.``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from harness.errors import HarnessError
from harness.method import MethodContext, Solution
from harness.registry import Param, register_method

LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")

BOTTOM = Param(1, help="transformer layers at the bottom taken from the language expert",
               low=0, high=1024, grid=[0, 1, 2])  # fmt: skip
TOP = Param(1, help="transformer layers at the top taken from the language expert",
            low=0, high=1024, grid=[0, 1])  # fmt: skip
TRANSITION = Param(1, help="layers averaging both experts inside each swapped block",
                   low=0, high=1024, grid=[0, 1])  # fmt: skip
MATH_EXPERT = Param(None, help="the pool's task expert (default: the suite's math role)",
                    nullable=True)  # fmt: skip
EMBEDDINGS = Param("language", help="which expert the token embeddings come from",
                   choices=["language", "math"])  # fmt: skip
LANGUAGE_EXPERT = Param(None, help="the pool's language expert (default: the suite's role)",
                        nullable=True)  # fmt: skip


class LayerSwapError(HarnessError):
    """Layer counts or roles that do not fit the pool."""


def layer_index(name: str) -> int | None:
    """The transformer layer a parameter belongs to (``model.layers.3.mlp...`` → 3)."""
    found = LAYER.search(name)
    return int(found.group(1)) if found else None


def layer_sources(layers: int, bottom: int, top: int, transition: int) -> list[str]:
    """Per layer, "language", "average" or "math"; a one-line error when the counts
    leave no math layer."""
    for name, value in (("bottom", bottom), ("top", top), ("transition", transition)):
        if value < 0:
            raise LayerSwapError(f"layer_swap: {name}={value} must be 0 or more")
    upper = top + transition if top > 0 else 0
    if bottom + transition + upper >= layers:
        raise LayerSwapError(
            f"layer_swap: bottom={bottom}, top={top}, transition={transition} leave no "
            f"math-expert layer in a {layers}-layer model; lower the counts with --set "
            f"(bottom + transition + top + transition must stay below {layers})"
        )
    sources = ["math"] * layers
    for i in range(layers):
        if i < bottom or (top > 0 and i >= layers - top):
            sources[i] = "language"
        elif i < bottom + transition or (top > 0 and i >= layers - top - transition):
            sources[i] = "average"
    return sources


def roles(context: MethodContext, math_expert: str | None, language_expert: str | None):
    """(math expert, language expert): given, or the suite's declared roles."""
    declared: Mapping[str, str] = getattr(context.suite, "roles", {}) or {}
    math = math_expert or declared.get("math")
    language = language_expert or declared.get("language")
    if not math or not language:
        raise LayerSwapError(
            f"layer_swap needs a math expert and a language expert; suite "
            f"{context.suite.name!r} declares no roles, so name them with --set "
            f"math_expert=<task> --set language_expert=<task> (tasks: "
            f"{', '.join(context.pool.tasks)})"
        )
    for role, task in (("math_expert", math), ("language_expert", language)):
        if task not in context.pool.tasks:
            raise LayerSwapError(
                f"layer_swap: {role}={task!r} is not in the pool ({', '.join(context.pool.tasks)})"
            )
    if math == language:
        raise LayerSwapError(f"layer_swap: the math and language experts are both {math!r}")
    return math, language


@register_method(
    "layer_swap",
    family="merging",
    reference="https://arxiv.org/abs/2410.01335",
    params={
        "bottom": BOTTOM,
        "top": TOP,
        "transition": TRANSITION,
        "embeddings": EMBEDDINGS,
        "math_expert": MATH_EXPERT,
        "language_expert": LANGUAGE_EXPERT,
    },
    description="The math expert with its bottom and top layers swapped for a language "
    "expert's (transition layers averaged).",
    needs=("roles",),
    smoke={"top": 0, "transition": 0},  # the tiny contract towers have two layers
)
def layer_swap(
    context: MethodContext,
    bottom: int,
    top: int,
    transition: int,
    embeddings: str = "language",
    math_expert: str | None = None,
    language_expert: str | None = None,
) -> Solution:
    math, language = roles(context, math_expert, language_expert)
    pool = context.pool
    indices = [layer_index(name) for name in pool.names]
    found = [index for index in indices if index is not None]
    if not found:
        raise LayerSwapError(
            f"layer_swap finds no transformer layers (names like model.layers.<i>.) in "
            f"{context.suite.name!r}'s pool; it applies to decoder LMs"
        )
    layers = max(found) + 1
    sources = layer_sources(layers, bottom, top, transition)
    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, index in zip(pool.names, indices):
            if not pool.is_mergeable(name):
                continue
            if index is None:  # the embeddings as chosen; final norm and head as the last layer
                source = embeddings if "embed" in name else sources[-1]
            else:
                source = sources[index]
            if source == "math":
                merged[name] = pool.expert_tensor(math, name)
            elif source == "language":
                merged[name] = pool.expert_tensor(language, name)
            else:
                merged[name] = (
                    pool.expert_tensor(math, name) + pool.expert_tensor(language, name)
                ) / 2
    return Solution(
        state=pool.output_state(merged),
        info={
            "math_expert": math,
            "language_expert": language,
            "embeddings": embeddings,
            "layers": sources,
        },
    )
