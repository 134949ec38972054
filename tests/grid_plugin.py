"""HARNESS_PLUGINS=tests.grid_plugin: what the scale-out tests' workers register."""

from harness.registry import METHODS, SUITES
from tests.grid_cells import METHOD_ENTRIES, SUITE_ENTRY

SUITES.add(SUITE_ENTRY)
for entry in METHOD_ENTRIES:
    METHODS.add(entry)
