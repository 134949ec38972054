"""FusionBench's own TIES on the checkpoints ``harness bench merge`` writes, for comparison.

Run with the Python of a bench-only environment that has the ``fusion-bench`` package
(never a dependency of the harness, so this file imports nothing from it):

    python -m venv /work/fbenv && /work/fbenv/bin/pip install torch fusion-bench
    /work/fbenv/bin/python harness/bench/fusionbench_ties.py --checkpoints DIR --experts 4

``harness bench merge --compare-fusionbench /work/fbenv/bin/python`` runs it in the same
run as the harness's TIES and reports both times, their ratio and the largest difference
between the two merged models. The experts are loaded into memory first (not timed);
the timed part is what FusionBench's ``TiesMergingAlgorithm.run`` times as "merging
models": flatten each state dict (``state_dict_to_vector``), subtract the base,
``ties_merging`` (top-k by ``kthvalue`` per task, sign election, disjoint merge), add
``λ ·`` the merged vector to the base and unflatten (``vector_to_state_dict``).
FusionBench's CLIP config uses ``merge_func: sum``; ``mean`` is the paper's disjoint
mean, which the harness's ``ties`` implements, so the two compute the same model.
Prints one JSON line: seconds, peak RSS in MiB, and where the merged model was written.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--experts", type=int, required=True)
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--scaling", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from fusion_bench.method.ties_merging.ties_merging_utils import (
        state_dict_to_vector,
        ties_merging,
        vector_to_state_dict,
    )
    from safetensors.torch import load_file, save_file

    def load(name: str) -> dict[str, torch.Tensor]:
        state = load_file(str(args.checkpoints / f"{name}.safetensors"))
        return {k: v.float() for k, v in state.items() if v.is_floating_point()}

    base = load("base")
    experts = [load(f"expert{i}") for i in range(1, args.experts + 1)]
    with torch.no_grad():
        cpu_started = os.times()
        started = time.perf_counter()
        flat_experts = torch.vstack([state_dict_to_vector(state, []) for state in experts])
        flat_base = state_dict_to_vector(base, [])
        task_vectors = flat_experts - flat_base
        merged_vector = ties_merging(task_vectors, reset_thresh=args.density, merge_func="mean")
        merged = vector_to_state_dict(flat_base + args.scaling * merged_vector, base, [])
        seconds = time.perf_counter() - started
        cpu_ended = os.times()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.output is not None:
        save_file({k: v.contiguous() for k, v in merged.items()}, str(args.output))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": (cpu_ended.user - cpu_started.user)
                + (cpu_ended.system - cpu_started.system),
                "peak_rss_mib": peak,
                "output": str(args.output) if args.output else None,
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
