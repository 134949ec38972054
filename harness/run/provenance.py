"""Where a result came from: versions, commit, device, peak memory."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

import harness

PACKAGES = (
    "torch",
    "transformers",
    "safetensors",
    "datasets",
    "huggingface_hub",
    "numpy",
    "scikit-learn",
    "open_clip_torch",
    "lm_eval",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The harness checkout's commit (with ``-dirty`` if files changed), if it is one."""
    root = Path(harness.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict[str, Any]:
    return {
        "harness_version": harness.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_name(device),
    }


def peak_memory(device: torch.device) -> dict[str, int | None]:
    """Peak resident memory of this process, and peak CUDA allocation where used."""
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cuda = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {"cpu_rss_bytes": int(rss_kib) * 1024, "cuda_bytes": cuda}


def resolve_device(name: str) -> torch.device:
    from harness.errors import HarnessError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError("--device cuda was asked for but no CUDA GPU is visible; use cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise HarnessError(f"unknown device {name!r}; use auto, cpu or cuda") from None
