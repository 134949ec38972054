"""Records written before the layout change (commit ba87b8e, tiny suite) still validate,
render, and are found by a resumed grid under the same run ids."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.run.records import read_record, record_files, validation_problems_in
from harness.run.runner import RunSpec
from leaderboard.build import build_site

OLD = Path(__file__).parent / "data" / "records_before_layout"


def test_old_records_validate():
    files = list(record_files(OLD))
    assert len(files) == 3
    assert validation_problems_in(files) == []


def test_old_records_keep_their_run_ids(tiny_suite_name, tmp_path):
    """A grid resumed after upgrading skips cells recorded before: same spec, same path."""
    results = tmp_path / "results"
    shutil.copytree(OLD, results)
    for path in record_files(results):
        record = read_record(path)
        spec = RunSpec(method=record["method"]["name"], suite="tiny3", results_dir=results)
        assert spec.run_id() == record["run_id"]
        assert spec.path() == path


def test_old_records_render(tmp_path):
    index = build_site(OLD, tmp_path / "site")
    pages = {path.name: path.read_text() for path in (tmp_path / "site").rglob("*.html")}
    assert index.is_file() and "tiny3" in index.read_text()
    assert any("tall_masks" in text for text in pages.values())
