"""Name → method / suite registries, filled by decorators, as timm's ``@register_model``.

Every module under the ``methods`` and ``tasks`` packages is imported on first use, so a
new method is one file with one decorator. Third-party packages add more through the
entry-point groups ``harness.methods`` and ``harness.tasks`` (each entry point names a
module to import).
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from harness.errors import HarnessError, HyperparameterError, UnknownNameError

FAMILIES = ("baseline", "merging", "routing", "distillation", "transferability")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its paper default, its legal range and its selection grid.

    The type is the default's type (an int default also accepts whole floats; a float
    default accepts ints). ``grid`` lists the values tried on the validation split when
    the user does not fix the value with ``--set``; an empty grid means "use the default".
    """

    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: Sequence[Any] | None = None
    grid: Sequence[Any] = ()
    nullable: bool = False

    @property
    def type(self) -> type:
        return type(self.default) if self.default is not None else str

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise a one-line error."""
        if value is None and (self.nullable or self.default is None):
            return None
        expected = self.type
        if expected is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "1", "yes"):
                    value = True
                elif lowered in ("false", "0", "no"):
                    value = False
            if not isinstance(value, bool):
                raise HyperparameterError(f"{name} must be true or false, got {value!r}")
        elif expected in (int, float):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise HyperparameterError(
                        f"{name} must be a number ({expected.__name__}), got {value!r}"
                    ) from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise HyperparameterError(
                    f"{name} must be a number ({expected.__name__}), got {value!r}"
                )
            if value != value:  # NaN
                raise HyperparameterError(f"{name} must be a number, got NaN")
            if expected is int:
                if float(value) != int(value):
                    raise HyperparameterError(f"{name} must be a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            if self.low is not None and value < self.low:
                raise HyperparameterError(f"{name}={value} is below its minimum {self.low}")
            if self.high is not None and value > self.high:
                raise HyperparameterError(f"{name}={value} is above its maximum {self.high}")
        elif expected is str:
            value = str(value)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise HyperparameterError(f"{name}={value!r} is not one of: {allowed}")
        return value


@dataclass(frozen=True)
class Entry:
    """A registered method or suite: everything the CLI, the runner and the site show."""

    name: str
    kind: str  # "method" or "suite"
    obj: Any
    family: str = ""
    reference: str = ""
    params: Mapping[str, Param] = field(default_factory=dict)
    description: str = ""
    module: str = ""
    experts: int | None = None  # a method that needs exactly this many experts (slerp: 2)
    # cheap settings for the contract tests on the tiny suite (e.g. fewer steps); the
    # paper defaults stay the defaults everywhere else
    smoke: Mapping[str, Any] = field(default_factory=dict)
    # what a method needs from the suite beyond weights (keys of harness.suite.CAPABILITIES)
    needs: tuple[str, ...] = ()

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: param.default for name, param in self.params.items()}

    @property
    def grid(self) -> dict[str, list[Any]]:
        return {name: list(param.grid) for name, param in self.params.items() if param.grid}

    def resolve_params(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults updated with checked overrides; an unknown key is an error."""
        values = self.defaults
        for key, value in overrides.items():
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                hint = _closest(key, self.params)
                word = "hyperparameter" if self.kind == "method" else "option"
                raise UnknownNameError(
                    f"{self.kind} {self.name!r} has no {word} {key!r}{hint} (its {word}s: {known})"
                )
            values[key] = self.params[key].check(key, value)
        return values

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description, for ``harness list --format json`` and the site."""
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "reference": self.reference,
            "description": self.description,
            "defaults": self.defaults,
            "grid": self.grid,
            "params": {
                name: {
                    "default": p.default,
                    "help": p.help,
                    "low": p.low,
                    "high": p.high,
                    "choices": list(p.choices) if p.choices is not None else None,
                    "grid": list(p.grid),
                }
                for name, p in self.params.items()
            },
            "module": self.module,
            "experts": self.experts,
            "needs": list(self.needs),
        }


def _closest(name: str, candidates: Sequence[str] | Mapping[str, Any]) -> str:
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


class Registry:
    """One namespace of registered entries, with discovery on first lookup."""

    def __init__(
        self, kind: str, list_name: str, packages: Sequence[str], entry_point_group: str
    ) -> None:
        self.kind = kind
        self.list_name = list_name
        self._packages = tuple(packages)
        self._group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._discovered = False

    def add(self, entry: Entry) -> None:
        existing = self._entries.get(entry.name)
        if existing is not None and existing.module != entry.module:
            raise HarnessError(
                f"{self.kind} name {entry.name!r} is registered twice "
                f"({existing.module} and {entry.module}); rename one"
            )
        self._entries[entry.name] = entry

    def discover(self) -> None:
        """Import every module of the built-in packages and every entry point, once."""
        if self._discovered:
            return
        self._discovered = True
        for package_name in self._packages:
            package = importlib.import_module(package_name)
            for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
                if not info.name.rsplit(".", 1)[-1].startswith("_"):
                    importlib.import_module(info.name)
        for entry_point in entry_points(group=self._group):
            entry_point.load()
        for module in filter(None, os.environ.get("HARNESS_PLUGINS", "").split(",")):
            try:
                importlib.import_module(module.strip())
            except ImportError as error:
                raise HarnessError(
                    f"HARNESS_PLUGINS names {module.strip()!r}, which cannot be imported "
                    f"({error}); fix the name or its PYTHONPATH"
                ) from None

    def get(self, name: str) -> Entry:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{_closest(name, self._entries)}; "
                f"`harness list {self.list_name}` shows all ({known})"
            ) from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries


METHODS = Registry("method", "methods", ["methods"], "harness.methods")
SUITES = Registry("suite", "tasks", ["tasks"], "harness.tasks")


def register_method(
    name: str,
    *,
    family: str,
    reference: str,
    params: Mapping[str, Param] | None = None,
    description: str = "",
    experts: int | None = None,
    smoke: Mapping[str, Any] | None = None,
    needs: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(context, **hyperparameters) -> Solution`` as a method.

    ``reference`` is the paper's URL; ``params`` holds the paper's defaults and the grid
    used for validation-split selection. ``experts`` says that the method needs exactly
    that many experts (SLERP interpolates two); None means any number. ``smoke`` gives
    hyperparameter values that keep a slow method (many optimisation steps) fast enough
    for the shared contract tests on the tiny suite; they are checked like ``--set``.
    ``needs`` names what the method reads from the suite beyond weights ("batches",
    "heads": ``harness.suite.CAPABILITIES``; ``"heads|lm"``: either); a suite that does not
    provide it is refused before anything loads. Data-free methods need nothing and run on
    every suite.
    """
    from harness.suite import CAPABILITIES

    unknown = [need for need in needs if not set(need.split("|")) <= set(CAPABILITIES)]
    if unknown:
        raise ValueError(f"needs must be among {sorted(CAPABILITIES)}, got {unknown}")
    if experts is not None and experts < 1:
        raise ValueError(f"experts must be a positive number or None, got {experts!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = description or (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        METHODS.add(
            Entry(
                name=name,
                kind="method",
                obj=fn,
                family=family,
                reference=reference,
                params=dict(params or {}),
                description=doc,
                module=fn.__module__,
                experts=experts,
                smoke=dict(smoke or {}),
                needs=tuple(needs),
            )
        )
        return fn

    return decorator


def register_suite(
    name: str,
    *,
    reference: str = "",
    params: Mapping[str, Param] | None = None,
    description: str = "",
) -> Callable[[type], type]:
    """Register a :class:`harness.suite.Suite` subclass under ``name``.

    ``params`` are suite options (for example the CLIP architecture), set with
    ``--suite-set key=value``.
    """

    def decorator(cls: type) -> type:
        doc = description or (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        SUITES.add(
            Entry(
                name=name,
                kind="suite",
                obj=cls,
                family="suite",
                reference=reference,
                params=dict(params or {}),
                description=doc,
                module=cls.__module__,
            )
        )
        cls.name = name
        return cls

    return decorator
