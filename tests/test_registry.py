"""Registries, hyperparameter checking and closest-name suggestions."""

import pytest

from harness.errors import HyperparameterError, UnknownNameError
from harness.registry import Entry, Param, Registry


def make_entry(**params):
    return Entry(name="demo", kind="method", obj=None, family="merging", params=params)


def test_param_converts_strings_to_the_default_type():
    assert Param(0.3).check("scaling", "0.5") == 0.5
    assert Param(3).check("steps", "4") == 4
    assert Param(3).check("steps", 4.0) == 4
    assert Param(True).check("flag", "false") is False
    assert Param("a", choices=["a", "b"]).check("mode", "b") == "b"


@pytest.mark.parametrize(
    "param, value, message",
    [
        (Param(0.3), "abc", "must be a number"),
        (Param(3), "2.5", "whole number"),
        (Param(0.2, low=0.0, high=1.0), "1.5", "above its maximum"),
        (Param(0.2, low=0.0, high=1.0), -0.1, "below its minimum"),
        (Param(True), "maybe", "true or false"),
        (Param("a", choices=["a", "b"]), "c", "not one of"),
        (Param(0.3), "nan", "NaN"),
    ],
)
def test_param_rejects_bad_values_with_one_line(param, value, message):
    with pytest.raises(HyperparameterError, match=message) as error:
        param.check("x", value)
    assert "\n" not in str(error.value)


def test_unknown_hyperparameter_suggests_the_closest():
    entry = make_entry(scaling=Param(0.3), density=Param(0.2))
    with pytest.raises(UnknownNameError, match="did you mean scaling"):
        entry.resolve_params({"scalling": "0.1"})


def test_defaults_and_grid_come_from_params():
    entry = make_entry(scaling=Param(0.3, grid=[0.1, 0.2]), density=Param(0.2))
    assert entry.defaults == {"scaling": 0.3, "density": 0.2}
    assert entry.grid == {"scaling": [0.1, 0.2]}
    assert entry.resolve_params({"density": "0.5"}) == {"scaling": 0.3, "density": 0.5}


def test_registry_unknown_name_lists_close_matches():
    registry = Registry("method", "methods", [], "harness.none")
    registry.add(Entry(name="task_arithmetic", kind="method", obj=None))
    registry.add(Entry(name="ties", kind="method", obj=None))
    with pytest.raises(UnknownNameError, match="did you mean task_arithmetic"):
        registry.get("task_arithmetc")
    assert registry.names() == ["task_arithmetic", "ties"]


def test_registry_refuses_one_name_from_two_modules():
    registry = Registry("method", "methods", [], "harness.none")
    registry.add(Entry(name="ties", kind="method", obj=None, module="a"))
    with pytest.raises(Exception, match="registered twice"):
        registry.add(Entry(name="ties", kind="method", obj=None, module="b"))


def test_builtin_packages_are_discovered():
    from harness.registry import METHODS, SUITES

    METHODS.discover()
    SUITES.discover()
    # whatever is registered must describe itself as JSON-ready data
    for entry in METHODS.entries() + SUITES.entries():
        described = entry.describe()
        assert described["name"] == entry.name
