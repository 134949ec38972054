"""What the registries know about methods and suites, with the records as fallback.

The site must render records whose method or suite is not registered in this checkout
(results contributed from elsewhere), so every lookup here returns what the registry says
when it can and what the record says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.registry import METHODS, SUITES
from harness.suite import Published


@dataclass
class MethodInfo:
    name: str
    family: str
    reference: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    registered: bool = False


@dataclass
class SuiteInfo:
    name: str
    description: str = ""
    reference: str = ""
    tasks: list[str] = field(default_factory=list)
    metric: str = ""
    published: list[Published] = field(default_factory=list)
    registered: bool = False


def registered_methods() -> dict[str, MethodInfo]:
    infos = {}
    for entry in METHODS.entries():
        described = entry.describe()
        infos[entry.name] = MethodInfo(
            name=entry.name,
            family=entry.family,
            reference=entry.reference,
            description=described.get("description", ""),
            defaults=described.get("defaults", {}),
            grid=described.get("grid", {}),
            params=described.get("params", {}),
            registered=True,
        )
    return infos


def registered_suites() -> dict[str, SuiteInfo]:
    infos = {}
    for entry in SUITES.entries():
        cls = entry.obj
        infos[entry.name] = SuiteInfo(
            name=entry.name,
            description=entry.description,
            reference=entry.reference,
            tasks=list(getattr(cls, "tasks", []) or []),
            metric=str(getattr(cls, "metric", "") or ""),
            published=list(getattr(cls, "published", []) or []),
            registered=True,
        )
    return infos


def method_from_record(record: dict[str, Any]) -> MethodInfo:
    method = record["method"]
    return MethodInfo(name=method["name"], family=method["family"], reference=method["reference"])


def suite_from_record(record: dict[str, Any]) -> SuiteInfo:
    suite = record["suite"]
    return SuiteInfo(name=suite["name"], tasks=list(suite["tasks"]), metric=suite["metric"])


def safe_url(url: str) -> str | None:
    """``url`` if it is an http(s) link, else None: a ``javascript:`` reference stays text."""
    stripped = url.strip()
    if stripped.lower().startswith(("https://", "http://")) and not any(
        ch in stripped for ch in "\n\r\t "
    ):
        return stripped
    return None
