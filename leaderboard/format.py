"""How numbers read on the site: fixed decimals, seconds, binary units, parameter counts."""

from __future__ import annotations

import math


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: float | None, digits: int = 2) -> str:
    return "–" if _missing(value) else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    return "–" if _missing(value) else f"{value:+.{digits}f}"


def seconds(value: float | None) -> str:
    if _missing(value):
        return "–"
    if value < 10:
        return f"{value:.2f} s"
    if value < 600:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def memory(value: float | None) -> str:
    if _missing(value):
        return "–"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def count(value: float | None) -> str:
    """Parameter counts: ``0``, ``12.3 K``, ``85.8 M``, ``1.20 B``."""
    if _missing(value):
        return "–"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.{2 if unit == 'B' else 1}f} {unit}"
    return f"{value:.0f}"


def tick(value: float, unit: str = "", prefixes: bool = True) -> str:
    """Short axis labels for 1-2-5 values: ``0``, ``0.5 s``, ``20 M``, ``1 GB``."""
    if prefixes:
        for prefix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if value >= size:
                return f"{value / size:g} {prefix}{unit}".strip()
    return f"{value:g} {unit}".strip()
