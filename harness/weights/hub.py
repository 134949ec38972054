"""Resolve a hub artifact (model or dataset) to a local snapshot directory.

Online, ``huggingface_hub.snapshot_download`` fetches the repository as the hub serves
it. Offline, a mirror directory holds the same snapshots at ``DIR/models/<org>/<name>/``
and ``DIR/datasets/<org>/<name>/`` (what ``huggingface-cli download --local-dir`` writes).
Everything after this point (``from_pretrained``, ``load_dataset``, the expert pool) reads
the local directory, so the mirror and the hub share one loading path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ArtifactNotFoundError

KINDS = ("models", "datasets")


@dataclass(frozen=True)
class ResolvedArtifact:
    """A snapshot on local disk, with where it came from (for the run record)."""

    id: str
    kind: str  # "models" or "datasets"
    path: Path
    source: str  # "mirror" or "hub"
    revision: str | None


def mirror_root(explicit: Path | str | None = None) -> Path | None:
    """``--mirror`` if given, else ``HARNESS_MIRROR``, else None (use the hub)."""
    value = explicit if explicit is not None else os.environ.get("HARNESS_MIRROR")
    return Path(value).expanduser() if value else None


def mirror_path(root: Path, kind: str, repo_id: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return Path(root) / kind / repo_id


def _download_hint(kind: str, repo_id: str, target: Path | str) -> str:
    repo_type = " --repo-type dataset" if kind == "datasets" else ""
    return f"`huggingface-cli download {repo_id}{repo_type} --local-dir {target}`"


def _mirror_revision(path: Path) -> str | None:
    """The commit that ``huggingface-cli download --local-dir`` recorded, if any."""
    metadata_dir = path / ".cache" / "huggingface" / "download"
    for metadata in sorted(metadata_dir.rglob("*.metadata")) if metadata_dir.is_dir() else []:
        lines = metadata.read_text().splitlines()
        if lines and len(lines[0]) == 40:
            return lines[0]
    return None


def resolve(
    repo_id: str,
    kind: str = "models",
    *,
    revision: str | None = None,
    mirror: Path | str | None = None,
    allow_patterns: list[str] | None = None,
) -> ResolvedArtifact:
    """Find ``repo_id`` in the mirror (when one is set) or download it from the hub."""
    noun = "model" if kind == "models" else "dataset"
    root = mirror_root(mirror)
    if root is not None:
        path = mirror_path(root, kind, repo_id)
        if not path.is_dir() or not any(path.iterdir()):
            raise ArtifactNotFoundError(
                f"{noun} {repo_id!r} is not in the mirror: {path} is missing or empty; "
                f"fetch it on a connected machine with {_download_hint(kind, repo_id, path)}, "
                "or unset HARNESS_MIRROR/--mirror to use the hub"
            )
        return ResolvedArtifact(repo_id, kind, path, "mirror", _mirror_revision(path))
    return _from_hub(repo_id, kind, revision, allow_patterns, noun)


def _from_hub(
    repo_id: str,
    kind: str,
    revision: str | None,
    allow_patterns: list[str] | None,
    noun: str,
) -> ResolvedArtifact:
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(
            repo_id,
            repo_type="dataset" if kind == "datasets" else "model",
            revision=revision,
            allow_patterns=allow_patterns,
        )
    except Exception as error:  # the hub client raises many types for "not reachable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        target = f"<mirror>/{kind}/{repo_id}"
        raise ArtifactNotFoundError(
            f"{noun} {repo_id!r} could not be fetched from the hub ({reason[:160]}); "
            f"on a connected machine run {_download_hint(kind, repo_id, target)} "
            "and pass --mirror <mirror> (or set HARNESS_MIRROR)"
        ) from None
    path = Path(local)
    commit = path.name if path.parent.name == "snapshots" else revision
    return ResolvedArtifact(repo_id, kind, path, "hub", commit)


def resolve_model(repo_id: str, **kwargs: object) -> ResolvedArtifact:
    return resolve(repo_id, "models", **kwargs)  # type: ignore[arg-type]


def resolve_dataset(repo_id: str, **kwargs: object) -> ResolvedArtifact:
    return resolve(repo_id, "datasets", **kwargs)  # type: ignore[arg-type]
