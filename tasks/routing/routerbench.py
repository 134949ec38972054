"""routerbench: RouterBench's outcome table (Hu et al., 2024, "RouterBench: a benchmark for
multi-LLM routing system", https://arxiv.org/abs/2403.12031; withmartian/routerbench).

Eleven LLMs × about 36k prompts from 86 evaluation sets (MMLU subjects, GSM8K, MBPP,
ARC, Winogrande, Hellaswag, MT-Bench...), each with the model's score (0–1), response and
dollar cost, released as pandas pickles (``routerbench_0shot.pkl``: columns
``sample_id``, ``prompt``, ``eval_name``, ``oracle_model_to_route_to`` and per model
``<model>``, ``<model>|model_response``, ``<model>|total_cost``). Unpickling runs code
from the file, so the suite never opens a pickle: ``harness convert routerbench`` does,
once, with the user's explicit ``--allow-pickle``, and writes a parquet beside it that
the suite reads. Tasks are the ``eval_name`` values; a fixed seeded 30% of each task's
prompts is test, the rest train. Cost: dollars per query (``<model>|total_cost``).

Mirror: ``DIR/datasets/withmartian/routerbench/routerbench_0shot.pkl`` (``hf download
withmartian/routerbench --repo-type dataset``), then ``harness convert routerbench
DIR/datasets/withmartian/routerbench/routerbench_0shot.pkl --allow-pickle``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import register_suite
from harness.weights.hub import Requirement
from tasks.routing.mirrored import MirroredOutcomes, Rows, fixed_split

PICKLE = "routerbench_0shot.pkl"
PARQUET = "routerbench_0shot.parquet"
COST = "|total_cost"


def convert_pickle(source: Path, *, allow_pickle: bool) -> Path:
    """Write the parquet the suite reads from RouterBench's pickle (needs consent)."""
    import pandas as pd

    if not allow_pickle:
        raise HarnessError(
            f"{source} is a pickle: opening it runs code from the file; pass --allow-pickle "
            "if you trust it (the withmartian/routerbench release)"
        )
    if not source.is_file():
        raise HarnessError(f"no such file: {source}")
    frame = pd.read_pickle(source)
    if not isinstance(frame, pd.DataFrame) or not _models(frame):
        raise HarnessError(f"{source} is not RouterBench's table (no '<model>{COST}' columns)")
    keep = ["sample_id", "prompt", "eval_name"]
    keep += [c for m in _models(frame) for c in (m, f"{m}{COST}")]
    table = frame[keep].copy()
    table["prompt"] = table["prompt"].map(_text)
    target = source.with_suffix(".parquet")
    from harness.cache import atomic_path

    with atomic_path(target) as temporary:
        table.to_parquet(temporary, index=False)
    return target


def _models(frame) -> list[str]:
    return [c[: -len(COST)] for c in frame.columns if str(c).endswith(COST)]


def _text(prompt: object) -> str:
    """RouterBench stores some prompts as lists of turns; join them."""
    if isinstance(prompt, list | tuple | np.ndarray):
        return "\n".join(str(part) for part in prompt)
    return str(prompt)


@register_suite(
    "routerbench",
    reference="https://arxiv.org/abs/2403.12031",
    description="RouterBench: 11 LLMs × ~36k prompts with score and dollar cost, from a "
    "mirror (pickle converted once, with consent).",
)
class RouterBenchOutcomes(MirroredOutcomes):
    requirement = Requirement("withmartian/routerbench", "datasets", (PICKLE, PARQUET))
    cost_unit = "dollars per query"
    splits = {
        "train": "a fixed seeded 70% of each eval_name's prompts, minus a 10% carve",
        "validation": "a fixed 10% of the train rows",
        "test": "the other 30%",
    }

    def read(self, root: Path) -> Rows:
        import pandas as pd

        parquet = root / PARQUET
        if not parquet.is_file():
            pickle = root / PICKLE
            raise HarnessError(
                f"RouterBench ships a pickle, which the suite does not open; convert it once: "
                f"harness convert routerbench {pickle} --allow-pickle"
            )
        frame = pd.read_parquet(parquet)
        models = tuple(_models(frame))
        scores = frame[list(models)].to_numpy(dtype=float)
        costs = frame[[f"{m}{COST}" for m in models]].to_numpy(dtype=float)
        usable = np.isfinite(scores).all(axis=1) & np.isfinite(costs).all(axis=1)
        frame, scores, costs = frame[usable], scores[usable], costs[usable]
        tasks = [str(t) for t in frame["eval_name"]]
        return Rows(
            models=models,
            scores=np.clip(scores, 0.0, 1.0),
            costs=costs,
            tasks=tasks,
            splits=fixed_split(tasks, 0.3),
            texts=[str(p) for p in frame["prompt"]],
            ids=[str(s) for s in frame["sample_id"]],
        )
