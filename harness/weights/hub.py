"""Resolve hub artifacts (models, datasets) to local snapshot directories.

Online, ``huggingface_hub.snapshot_download`` fetches each repository as the hub serves
it. Offline, a mirror directory holds the same snapshots at ``DIR/models/<org>/<name>/``
and ``DIR/datasets/<org>/<name>/`` (what ``hf download <id> --local-dir ...`` writes).
Everything after this point (``from_pretrained``, ``load_dataset``, the expert pool) reads
the local directory, so the mirror and the hub share one loading path.

A suite declares everything it needs as :class:`Requirement` s and resolves them at once
with :func:`resolve_all`, so a user learns about every missing artifact in one error, with
a script of the ``hf download`` commands that fetch them, before anything is loaded.

Why a reachability probe: the hub client sets no read timeout on its metadata request, so a
hub behind a silent firewall or proxy hangs ``snapshot_download`` indefinitely (measured
with huggingface_hub 2.4: a server that accepts and never answers blocks it for > 10
minutes). One bounded request (``HARNESS_HUB_TIMEOUT`` seconds, default 10) decides whether
the hub answers; when it does not, artifacts come from the local hub cache only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import ArtifactNotFoundError, HarnessError

KINDS = ("models", "datasets")
DEFAULT_HUB_TIMEOUT = 10.0


@dataclass(frozen=True)
class ResolvedArtifact:
    """A snapshot on local disk, with where it came from (for the run record)."""

    id: str
    kind: str  # "models" or "datasets"
    path: Path
    source: str  # "mirror" or "hub"
    revision: str | None

    def identity(self) -> str:
        """What keys caches built from it: the revision when the hub (or download
        metadata) names one, else a fingerprint of the files."""
        from harness.weights.snapshot_id import snapshot_fingerprint

        return self.revision or f"files:{snapshot_fingerprint(self.path)}"


@dataclass(frozen=True)
class Requirement:
    """One hub artifact a suite needs: what to fetch, and how, when it is missing.

    ``allow_patterns`` limits a hub download (and the printed ``--include`` flags) to the
    files the suite reads. ``fetch`` replaces the ``hf download`` command for artifacts
    that are not on the hub (e.g. a conversion); ``$MIRROR`` in it is the mirror root.
    ``revision`` is a branch or commit other than main (e.g. ``refs/convert/parquet``, the
    hub's parquet conversion of a dataset whose main branch is a loading script).
    """

    id: str
    kind: str = "models"
    allow_patterns: tuple[str, ...] | None = None
    fetch: str | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")

    @property
    def noun(self) -> str:
        return "model" if self.kind == "models" else "dataset"


def mirror_root(explicit: Path | str | None = None) -> Path | None:
    """``--mirror`` if given, else ``HARNESS_MIRROR``, else None (use the hub)."""
    value = explicit if explicit is not None else os.environ.get("HARNESS_MIRROR")
    return Path(value).expanduser() if value else None


def mirror_path(root: Path, kind: str, repo_id: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return Path(root) / kind / repo_id


def download_command(requirement: Requirement, mirror: str = "$MIRROR") -> str:
    """The shell command that puts ``requirement`` into the mirror ``mirror``.

    ``hf download`` (huggingface_hub ≥ 1.0; ``huggingface-cli`` is gone) takes one glob
    per ``--include``: a second bare glob would be read as a file name.
    """
    target = f"{mirror}/{requirement.kind}/{requirement.id}"
    if requirement.fetch is not None:
        return requirement.fetch.replace("$MIRROR", mirror)
    words = ["hf", "download", requirement.id]
    if requirement.kind == "datasets":
        words += ["--repo-type", "dataset"]
    if requirement.revision:
        words += ["--revision", requirement.revision]
    for pattern in requirement.allow_patterns or ():
        words += ["--include", pattern]
    command = shlex.join(words)
    # "$MIRROR/..." stays expandable; a literal path is quoted like any other word.
    local_dir = f'"{target}"' if mirror.startswith("$") else shlex.quote(target)
    return f"{command} --local-dir {local_dir}"


def _mirror_revision(path: Path) -> str | None:
    """The commit that ``hf download --local-dir`` recorded, if any."""
    metadata_dir = path / ".cache" / "huggingface" / "download"
    for metadata in sorted(metadata_dir.rglob("*.metadata")) if metadata_dir.is_dir() else []:
        lines = metadata.read_text().splitlines()
        if lines and len(lines[0]) == 40:
            return lines[0]
    return None


def _in_mirror(root: Path, requirement: Requirement) -> ResolvedArtifact | None:
    path = mirror_path(root, requirement.kind, requirement.id)
    if not path.is_dir() or not any(name != ".cache" for name in os.listdir(path)):
        return None
    revision = _mirror_revision(path)
    return ResolvedArtifact(requirement.id, requirement.kind, path, "mirror", revision)


# ---------------------------------------------------------------------------- one call
def resolve_all(
    requirements: Sequence[Requirement],
    *,
    mirror: Path | str | None = None,
    needed_by: str = "this run",
) -> list[ResolvedArtifact]:
    """Resolve every requirement (mirror, else hub), or fail once naming all missing ones.

    With a mirror set there is no fallback to the hub. The error is one line; the commands
    that fetch what is missing go to a script under the harness cache that it names.
    """
    requirements = list(dict.fromkeys(requirements))
    root = mirror_root(mirror)
    if root is not None:
        found = {req: _in_mirror(root, req) for req in requirements}
        missing = [req for req, resolved in found.items() if resolved is None]
        if missing:
            script = write_fetch_script(missing, root, needed_by)
            gap = _gap(missing, requirements, needed_by, "has none of", "lacks")
            raise ArtifactNotFoundError(
                f"the mirror {root} {gap}; {_how_to_fetch(missing, script, str(root))}, "
                "or unset HARNESS_MIRROR/--mirror to use the hub"
            )
        return [found[req] for req in requirements]  # type: ignore[misc]
    return _from_hub(requirements, needed_by)


def resolve(
    repo_id: str,
    kind: str = "models",
    *,
    revision: str | None = None,
    mirror: Path | str | None = None,
    allow_patterns: list[str] | None = None,
) -> ResolvedArtifact:
    """Find ``repo_id`` in the mirror (when one is set) or download it from the hub."""
    requirement = Requirement(repo_id, kind, tuple(allow_patterns) if allow_patterns else None)
    root = mirror_root(mirror)
    if root is not None:
        resolved = _in_mirror(root, requirement)
        if resolved is None:
            path = mirror_path(root, kind, repo_id)
            raise ArtifactNotFoundError(
                f"{requirement.noun} {repo_id!r} is not in the mirror: {path} is missing or "
                f"empty; fetch it on a connected machine with "
                f"`{download_command(requirement, str(root))}`, "
                "or unset HARNESS_MIRROR/--mirror to use the hub"
            )
        return resolved
    return _from_hub([requirement], "this run", revision)[0]


def resolve_model(repo_id: str, **kwargs: object) -> ResolvedArtifact:
    return resolve(repo_id, "models", **kwargs)  # type: ignore[arg-type]


def resolve_dataset(repo_id: str, **kwargs: object) -> ResolvedArtifact:
    return resolve(repo_id, "datasets", **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- hub
def hub_timeout() -> float:
    """Seconds the reachability probe waits (``HARNESS_HUB_TIMEOUT``, default 10)."""
    value = os.environ.get("HARNESS_HUB_TIMEOUT", "")
    try:
        timeout = float(value) if value else DEFAULT_HUB_TIMEOUT
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise HarnessError(f"HARNESS_HUB_TIMEOUT={value!r} is not a positive number of seconds")
    return timeout


def _short(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line[:160]


def hub_unreachable(probe: Requirement) -> str | None:
    """Why the hub cannot be reached (offline mode, network, timeout), or None if it answers.

    Any HTTP answer, even "repository not found", means the hub is reachable.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    flag = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if constants.HF_HUB_OFFLINE or flag:
        return "HF_HUB_OFFLINE is set"
    repo_type = "dataset" if probe.kind == "datasets" else "model"
    try:
        HfApi().repo_info(probe.id, repo_type=repo_type, timeout=hub_timeout())
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status is not None and status >= 500:
            return f"{constants.ENDPOINT} answered HTTP {status}"
        return None
    except Exception as error:  # connect, DNS, proxy, TLS, timeout: all "not reachable"
        return f"{type(error).__name__}: {_short(error)}"
    return None


def _from_hub(
    requirements: Sequence[Requirement], needed_by: str, revision: str | None = None
) -> list[ResolvedArtifact]:
    """Download each requirement; when the hub does not answer, use the local hub cache."""
    from huggingface_hub import constants, snapshot_download

    offline_reason = hub_unreachable(requirements[0]) if requirements else None
    resolved: dict[Requirement, ResolvedArtifact] = {}
    failures: dict[Requirement, str] = {}
    for requirement in requirements:
        try:
            local = snapshot_download(
                requirement.id,
                repo_type="dataset" if requirement.kind == "datasets" else "model",
                revision=requirement.revision or revision,
                allow_patterns=list(requirement.allow_patterns or []) or None,
                local_files_only=offline_reason is not None,
            )
        except Exception as error:  # the hub client raises many types
            failures[requirement] = _short(error)
            continue
        path = Path(local)
        commit = path.name if path.parent.name == "snapshots" else revision
        resolved[requirement] = ResolvedArtifact(
            requirement.id, requirement.kind, path, "hub", commit
        )
    if not failures:
        return [resolved[req] for req in requirements]
    missing = list(failures)
    script = write_fetch_script(missing, None, needed_by)
    fetch = _how_to_fetch(missing, script, "<mirror>")
    if offline_reason is not None:
        gap = _gap(missing, requirements, needed_by, "has none of", "lacks")
        raise ArtifactNotFoundError(
            f"the hub ({constants.ENDPOINT}) cannot be reached ({offline_reason}) and the "
            f"local hub cache {gap}; pass --mirror <mirror> (or set HARNESS_MIRROR); {fetch}"
        )
    first = failures[missing[0]]
    raise ArtifactNotFoundError(
        f"{_count(missing, requirements)} that {needed_by} needs could not be fetched from "
        f"the hub: {_names(missing)} (first error: {first}); check the ids and your access "
        f"(`hf auth login` for gated repos), or pass --mirror <mirror>; {fetch}"
    )


# ---------------------------------------------------------------------------- messages
def _count(missing: Sequence[Requirement], wanted: Sequence[Requirement]) -> str:
    if len(missing) == 1 and len(wanted) == 1:
        return f"the {missing[0].noun}"
    return f"{len(missing)} of the {len(wanted)} artifacts"


def _gap(
    missing: Sequence[Requirement],
    wanted: Sequence[Requirement],
    needed_by: str,
    none: str,
    lacks: str,
) -> str:
    """``has none of the 17 artifacts (...) that vit8 needs`` or ``lacks 2 of ...: ids``."""
    if len(missing) == len(wanted) > 1:
        return f"{none} the {_summary(missing)} that {needed_by} needs"
    return f"{lacks} {_count(missing, wanted)} that {needed_by} needs: {_names(missing)}"


def _summary(requirements: Sequence[Requirement]) -> str:
    """``17 artifacts (9 models, 8 datasets)``."""
    counts = [(sum(req.kind == kind for req in requirements), kind) for kind in KINDS]
    parts = ", ".join(f"{n} {kind if n != 1 else kind[:-1]}" for n, kind in counts if n)
    return f"{len(requirements)} artifacts ({parts})"


def _names(requirements: Iterable[Requirement]) -> str:
    """``models a, b; datasets c`` — every id, grouped by kind."""
    groups = []
    for kind in KINDS:
        ids = [req.id for req in requirements if req.kind == kind]
        if ids:
            groups.append(f"{kind} {', '.join(ids)}")
    return "; ".join(groups)


def _how_to_fetch(missing: Sequence[Requirement], script: Path | None, mirror: str) -> str:
    if script is not None:
        converted = [req for req in missing if req.fetch is not None]
        note = ""
        if converted:
            example = download_command(converted[0], mirror)
            verb = "is" if len(converted) == 1 else "are"
            note = f"; {len(converted)} {verb} not on the hub but made as in `{example}`"
        return (
            f"the commands that fetch them are in {script} "
            f"(on a connected machine: `sh {shlex.quote(str(script))} {mirror}`{note})"
        )
    return f"fetch each on a connected machine with `{download_command(missing[0], mirror)}`"


def write_fetch_script(
    missing: Sequence[Requirement], mirror: Path | None, needed_by: str
) -> Path | None:
    """A POSIX shell script of the commands that fetch ``missing`` into a mirror.

    Written under the harness cache (not into the mirror, which may be read-only or on
    another machine) and named by its content, so the same gap gives the same file.
    Returns None when the cache cannot be written; the caller then prints one command.
    """
    from harness.cache import atomic_path, cache_dir, content_key

    default = f'"${{1:-{mirror}}}"' if mirror is not None else '"${1:?usage: sh $0 MIRROR}"'
    lines = [
        "#!/bin/sh",
        f"# What {needed_by} needs and the mirror lacks; written by the harness on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "# Run it on a machine with hub access: sh <this file> [MIRROR]; then pass",
        "# --mirror MIRROR (or set HARNESS_MIRROR), after copying MIRROR if need be.",
        "set -e",
        f"MIRROR={default}",
    ]
    for requirement in missing:
        command = download_command(requirement)
        if requirement.fetch is not None:
            lines.append(f"# {requirement.id} is not on the hub; fill in the paths first:")
            command = f"# {command}"
        lines.append(command)
    key = content_key(needed_by, str(mirror), [download_command(req) for req in missing])
    target = cache_dir() / "fetch" / f"{_slug(needed_by)}-{key[:8]}.sh"
    try:
        with atomic_path(target) as temporary:
            temporary.write_text("\n".join(lines) + "\n")
    except OSError:
        return None
    return target


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")[:40] or "run"
