"""The static leaderboard: cells and seeds, published numbers, costs, escaping, downloads.

Every test builds a site from records it writes itself (valid per the schema), with any
registry entries it needs added through ``monkeypatch`` so nothing leaks into the global
registries.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import HarnessError
from harness.registry import METHODS, SUITES, Entry, Param
from harness.run.records import validation_errors, write_record
from harness.suite import Published
from leaderboard import build as build_module
from leaderboard.build import MARKER, build_site
from leaderboard.cells import group_runs
from leaderboard.names import UniqueNames, slug
from leaderboard.pareto import pareto_mask

SUITE = "toy2"
SCRIPT_NAME = "<script>window.__pwned=1</script>"
IMG_NAME = '<img src=x onerror="window.__pwned=1">'

BASE: dict[str, Any] = {
    "schema_version": 1,
    "run_id": "placeholder",
    "created": "2026-11-22T10:00:00+00:00",
    "method": {
        "name": "ties",
        "family": "merging",
        "reference": "https://arxiv.org/abs/2306.01708",
    },
    "hyperparameters": {"scaling": 0.3, "density": 0.2},
    "selection": {"strategy": "defaults", "fixed": []},
    "suite": {
        "name": SUITE,
        "checkpoint_set": "toy-ckpt",
        "metric": "accuracy",
        "tasks": ["a", "b"],
    },
    "tasks": {},
    "average": 0.0,
    "normalized_average": None,
    "artifacts": [
        {"role": "base", "id": "harness/toy-base", "source": "built", "sha256": "ab" * 32},
        {"role": "dataset:a", "id": "org/data-a", "source": "hub", "revision": "f00dcafe"},
    ],
    "seed": 0,
    "environment": {
        "harness_version": "0.1.0",
        "git_commit": "0123456789abcdef",
        "python": "3.11.9",
        "platform": "Linux-test",
        "packages": {"torch": "2.14.1", "numpy": "2.1.0"},
        "device": "cpu:x86_64 x2 threads",
    },
    "timings": {"load_s": 1.0, "select_s": 0.0, "method_s": 1.0, "evaluate_s": 2.0, "total_s": 4.0},
    "peak_memory": {"cpu_rss_bytes": 2**30, "cuda_bytes": None},
    "extra_parameters": 0,
    "method_info": {"note": "toy"},
    "command": "harness eval --method ties --tasks toy2 --seed 0",
}


def make_record(
    method: str = "ties",
    *,
    family: str = "merging",
    seed: int = 0,
    metrics: tuple[float, float] = (80.0, 60.0),
    method_s: float = 1.0,
    extra: int = 0,
    strategy: str = "defaults",
    hyperparameters: dict[str, Any] | None = None,
    fixed: list[str] | None = None,
    checkpoint_set: str = "toy-ckpt",
    reference: str = "https://arxiv.org/abs/2306.01708",
    run_id: str | None = None,
) -> dict[str, Any]:
    """A valid record of ``method`` on the toy suite; the average is the mean of metrics."""
    record = copy.deepcopy(BASE)
    safe = slug(method)
    record["run_id"] = run_id or f"{safe}__{SUITE}__{strategy}__{checkpoint_set}__seed{seed}"
    record["method"] = {"name": method, "family": family, "reference": reference}
    record["seed"] = seed
    record["suite"]["checkpoint_set"] = checkpoint_set
    individual = {"a": 90.0, "b": 80.0}
    record["tasks"] = {
        task: {
            "metric": value,
            "individual": individual[task],
            "normalized": 100 * value / individual[task],
            "n": 50,
        }
        for task, value in zip(("a", "b"), metrics)
    }
    record["average"] = sum(metrics) / len(metrics)
    record["normalized_average"] = sum(t["normalized"] for t in record["tasks"].values()) / 2
    record["timings"]["method_s"] = method_s
    record["extra_parameters"] = extra
    record["selection"] = {"strategy": strategy, "fixed": list(fixed or [])}
    if hyperparameters is not None:
        record["hyperparameters"] = hyperparameters
    if strategy == "grid":
        record["selection"].update(
            split="validation",
            metric="accuracy",
            grid={"scaling": [0.1, 0.3]},
            candidates=[
                {"hyperparameters": {**record["hyperparameters"], "scaling": 0.1}, "score": 70.5},
                {"hyperparameters": record["hyperparameters"], "score": 72.5},
            ],
        )
    record["command"] = f"harness eval --method {method} --tasks {SUITE} --seed {seed}"
    assert validation_errors(record) == [], validation_errors(record)
    return record


SEED_METRICS = [(80.0, 60.0), (82.0, 62.0), (81.0, 58.0)]


def write_standard_results(results: Path) -> dict[str, Any]:
    """Three seeds of ties, a grid-selected ties, two baselines, hostile names, one broken file."""
    written: dict[str, Any] = {"ties_seeds": []}
    for seed, metrics in enumerate(SEED_METRICS):
        record = make_record("ties", seed=seed, metrics=metrics, method_s=2.0)
        written["ties_seeds"].append(record)
        write_record(results, record)
    written["ties_grid"] = make_record(
        "ties",
        strategy="grid",
        metrics=(84.0, 62.0),
        method_s=20.0,
        hyperparameters={"scaling": 0.3},
    )
    write_record(results, written["ties_grid"])
    written["average"] = make_record("weight_average", metrics=(70.0, 50.0), method_s=0.5)
    write_record(results, written["average"])
    written["individual"] = make_record(
        "individual", family="baseline", metrics=(95.0, 90.0), method_s=0.0, extra=8_000_000
    )
    write_record(results, written["individual"])
    written["script"] = make_record(
        SCRIPT_NAME, metrics=(75.0, 55.0), reference="javascript:window.__pwned=1"
    )
    write_record(results, written["script"])
    written["img"] = make_record(IMG_NAME, family="routing", metrics=(60.0, 40.0), method_s=50.0)
    write_record(results, written["img"])
    broken = results / SUITE / "ties" / "broken.json"
    broken.write_text('{"schema_version": 1, ')
    written["broken"] = broken
    return written


class ToySuite:
    """Stands in for a registered suite class: the leaderboard reads only class attributes."""

    tasks = ["a", "b"]
    metric = "accuracy"
    published = [
        Published("ties", 68.0, "https://example.org/ties-paper", "toy-ckpt", {"a": 78.0}),
        Published("ties", 99.0, "https://example.org/other", "other-ckpt", note="other set"),
        Published("dare", 66.6, "Yu et al. 2024", "toy-ckpt", note="not run here"),
    ]


def _toy_method(context: Any, **hyperparameters: Any) -> Any:
    raise AssertionError("never run by the leaderboard")


@pytest.fixture
def toy_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite with published numbers and one method with a grid, for this test only."""
    install_toy_registry(monkeypatch)


def install_toy_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    METHODS.discover()
    SUITES.discover()
    monkeypatch.setitem(
        SUITES._entries,
        SUITE,
        Entry(
            SUITE, "suite", ToySuite, family="suite", description="Two toy tasks.", module=__name__
        ),
    )
    monkeypatch.setitem(
        METHODS._entries,
        "toy_registered",
        Entry(
            "toy_registered",
            "method",
            _toy_method,
            family="merging",
            reference="https://example.org/toy",
            params={"alpha": Param(0.5, help="mixing weight", low=0, high=1, grid=(0.25, 0.5))},
            description="A registered method with no runs.",
            module=__name__,
        ),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One site from the standard results, shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("leaderboard")
    results, site = root / "results", root / "site"
    warnings: list[str] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_toy_registry(monkeypatch)
        written = write_standard_results(results)
        index = build_site(results, site, warn=warnings.append)
    return {"results": results, "site": site, "index": index, "warnings": warnings, **written}


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def suite_rows(site: Path) -> list[dict[str, str]]:
    return read_csv(site / "data" / f"suite-{SUITE}.csv")


def row_for(rows: list[dict[str, str]], method: str, setting_start: str = "") -> dict[str, str]:
    matches = [r for r in rows if r["method"] == method and r["setting"].startswith(setting_start)]
    assert len(matches) == 1, (method, setting_start, [r["setting"] for r in rows])
    return matches[0]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.targets.append(value)


# ------------------------------------------------------------------ cells and seeds
def test_seeds_of_one_cell_show_mean_std_and_count(built: dict[str, Any]) -> None:
    row = row_for(suite_rows(built["site"]), "ties", "paper defaults")
    averages = [sum(m) / 2 for m in SEED_METRICS]
    assert row["runs"] == "3"
    assert float(row["average_mean"]) == pytest.approx(statistics.mean(averages))
    assert float(row["average_std"]) == pytest.approx(statistics.stdev(averages))
    assert float(row["task:a_std"]) == pytest.approx(1.0)
    html = (built["site"] / "suites" / f"{SUITE}.html").read_text()
    assert f"{statistics.mean(averages):.2f} ± {statistics.stdev(averages):.2f}" in html
    single = row_for(suite_rows(built["site"]), "weight_average")
    assert single["runs"] == "1" and single["average_std"] == ""


def test_grid_selection_and_fixed_values_are_separate_cells() -> None:
    from leaderboard.cells import Run

    records = [
        make_record(seed=0),
        make_record(seed=1),
        make_record(strategy="grid", seed=0),
        make_record(strategy="grid", seed=1, hyperparameters={"scaling": 0.1, "density": 0.2}),
        make_record(strategy="fixed", fixed=["scaling"], seed=0),
        make_record(strategy="fixed", fixed=["scaling"], hyperparameters={"scaling": 0.9}),
        make_record(checkpoint_set="other", seed=0),
    ]
    cells = group_runs([Run(r, Path(f"{i}.json")) for i, r in enumerate(records)])
    sizes = sorted((c.setting, c.checkpoint_set, len(c.runs)) for c in cells)
    assert sizes == [
        ("fixed scaling=0.3", "toy-ckpt", 1),
        ("fixed scaling=0.9", "toy-ckpt", 1),
        ("paper defaults", "other", 1),
        ("paper defaults", "toy-ckpt", 2),
        ("selected on validation", "toy-ckpt", 2),  # chosen values may differ by seed
    ]


# ------------------------------------------------------------------ published numbers
def test_published_numbers_sit_beside_measured_ones(built: dict[str, Any]) -> None:
    rows = suite_rows(built["site"])
    ties = row_for(rows, "ties", "paper defaults")
    assert float(ties["published_average"]) == 68.0
    assert ties["published_checkpoint_set"] == "toy-ckpt"
    assert float(ties["delta"]) == pytest.approx(float(ties["average_mean"]) - 68.0)
    assert row_for(rows, "weight_average")["published_average"] == ""
    published = read_csv(built["site"] / "data" / f"suite-{SUITE}-published.csv")
    by_set = {(r["method"], r["checkpoint_set"]): r for r in published}
    assert by_set[("ties", "other-ckpt")]["measured_average_mean"] == "", "other set: no match"
    assert by_set[("dare", "toy-ckpt")]["note"] == "not run here"
    assert float(by_set[("ties", "toy-ckpt")]["published_task:a"]) == 78.0
    html = (built["site"] / "suites" / f"{SUITE}.html").read_text()
    assert "on toy-ckpt" in html and "https://example.org/ties-paper" in html


# ------------------------------------------------------------------ costs and Pareto
def test_pareto_mask() -> None:
    costs = [0.0, 1.0, 2.0, 2.0, 5.0]
    accuracies = [50.0, 70.0, 65.0, 70.0, 90.0]
    assert pareto_mask(costs, accuracies) == [True, True, False, False, True]
    assert pareto_mask([1.0, 1.0], [5.0, 5.0]) == [True, True], "ties do not dominate"


def test_cost_plots_mark_the_pareto_front(built: dict[str, Any]) -> None:
    rows = suite_rows(built["site"])
    front = {(r["method"], r["setting"]) for r in rows if r["pareto_method_s"] == "True"}
    # individual (a baseline: 0 s, best average) is a reference line, not a Pareto point;
    # among the merges: fastest weight_average, then the script-named method, then ties
    assert front == {
        ("weight_average", "paper defaults"),
        (SCRIPT_NAME, "paper defaults"),
        ("ties", "paper defaults"),
        ("ties", "selected on validation"),
    }
    assert row_for(rows, "individual")["pareto_extra_parameters"] == "False"
    extra_front = {r["method"] for r in rows if r["pareto_extra_parameters"] == "True"}
    assert extra_front == {"ties"}  # 0 extra params: the best merge at 0 is ties
    html = (built["site"] / "costs" / f"{SUITE}.html").read_text()
    assert html.count('<svg class="cost-plot"') == 3
    assert html.count('class="reference" data-method="individual"') == 3
    assert 'class="point pareto" data-method="ties · selected on validation"' in html
    assert 'class="point pareto" data-method="weight_average"' in html  # merge-time front
    assert 'class="point" data-method="weight_average"' in html  # off the others
    assert 'data-method="individual"><title>' in html and "(reference, not a merge)" in html
    # no record here has peak_memory.method_mib: the page says the process peak is shown
    assert "process peak memory" in html and "peak_memory.method_mib" in html
    assert "timings.method_s" in html, "each axis says what it measures"
    suite_html = (built["site"] / "suites" / f"{SUITE}.html").read_text()
    assert f'href="../costs/{SUITE}.html"' in suite_html
    for label in ("merge time", "eval time", "process peak memory", "extra params"):
        assert f'<button type="button">{label}</button>' in suite_html
    assert "1.00 GiB" in suite_html and "8.0 M" in suite_html


def test_method_memory_is_plotted_when_every_merge_records_it(
    tmp_path: Path, toy_registry: None
) -> None:
    results = tmp_path / "results"
    for method, mib, metrics in (
        ("ties", 300, (80.0, 60.0)),
        ("weight_average", 100, (70.0, 50.0)),
    ):
        record = make_record(method, metrics=metrics)
        record["peak_memory"]["method_mib"] = mib
        write_record(results, record)
    write_record(results, make_record("individual", family="baseline", metrics=(95.0, 90.0)))
    build_site(results, tmp_path / "site")
    rows = read_csv(tmp_path / "site" / "data" / f"suite-{SUITE}.csv")
    assert float(row_for(rows, "ties")["method_memory_bytes_mean"]) == 300 * 2**20
    assert row_for(rows, "individual")["method_memory_bytes_mean"] == ""
    assert {r["method"] for r in rows if r["pareto_memory"] == "True"} == {
        "ties",
        "weight_average",
    }
    html = (tmp_path / "site" / "costs" / f"{SUITE}.html").read_text()
    assert "method peak memory" in html and "process peak memory" not in html
    assert "300 MiB" in html or "300.00 MiB" in html


def test_wide_suites_keep_method_and_key_columns_first(tmp_path: Path, toy_registry: None) -> None:
    results = tmp_path / "results"
    write_record(results, make_record())
    build_site(results, tmp_path / "site")
    html = (tmp_path / "site" / "suites" / f"{SUITE}.html").read_text()
    keys = re.findall(r'<th data-key="([^"]+)"', html.split('id="results"')[1].split("</thead>")[0])
    assert keys[0] == "method"
    assert keys.index("task:a") > max(
        keys.index(k) for k in ("average", "normalized", "published", "method_s", "extra")
    )
    assert '<th data-key="method" data-type="text" class="sticky">' in html
    assert re.search(r'<td data-key="method"[^>]*class="sticky', html.split("<tbody>")[1])


def test_chosen_hyperparameter_values_are_shown(built: dict[str, Any]) -> None:
    rows = suite_rows(built["site"])
    grid = row_for(rows, "ties", "selected on validation")
    assert grid["hyperparameters"] == "scaling=0.3 (validation)"
    assert row_for(rows, "ties", "paper defaults")["hyperparameters"] == (
        "scaling=0.3, density=0.2 (paper defaults)"
    )
    html = (built["site"] / "suites" / f"{SUITE}.html").read_text()
    assert "scaling=0.3 (validation)" in html
    from leaderboard.cells import chosen_values

    seeds = [
        make_record(strategy="grid", seed=0, hyperparameters={"scaling": 0.1}),
        make_record(strategy="grid", seed=1, hyperparameters={"scaling": 0.3}),
    ]
    assert chosen_values(seeds) == "scaling=0.1/0.3 (validation)"
    fixed = make_record(strategy="grid", fixed=["density"])
    assert chosen_values([fixed]) == "scaling=0.3, density=0.2 (validation; density fixed)"


def test_every_published_number_links_its_own_source(built: dict[str, Any]) -> None:
    from tasks.vision.clip.published import PUBLISHED_VIT8

    assert PUBLISHED_VIT8
    for published in PUBLISHED_VIT8:
        assert re.fullmatch(r"https://\S+", published.source), published
        assert "REFERENCE.md" not in published.source + published.note, published
        if not published.table:
            assert "not confirmed" in published.note or "not re-checked" in published.note
    page = (built["site"] / "suites" / "vit8.html").read_text()
    published_block = page.split('id="block-published"')[1]
    rows = published_block.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    assert len(rows) == len(PUBLISHED_VIT8)
    for row, published in zip(rows, PUBLISHED_VIT8):
        assert f'<a href="{published.source}">' in row, (published, row)
    method_page = (built["site"] / "methods" / "ties.html").read_text()
    for published in (p for p in PUBLISHED_VIT8 if p.method == "ties"):
        assert f'<a href="{published.source}" rel="noopener">' in method_page


def test_published_per_task_numbers_average_to_the_published_average() -> None:
    """A transcription check: each row's tasks average to its average (both rounded)."""
    from tasks.vision.clip.published import PUBLISHED_VIT8

    rows = [p for p in PUBLISHED_VIT8 if p.per_task]
    assert len(rows) >= 30
    for published in rows:
        assert len(published.per_task) == 8, published
        mean = sum(published.per_task.values()) / 8
        assert abs(mean - published.average) <= 0.1, (published, mean)


# ------------------------------------------------------------------ security
def test_hostile_method_names_render_as_text(built: dict[str, Any]) -> None:
    pages = list(built["site"].rglob("*.html"))
    for page in pages:
        text = page.read_text()
        assert "<script>window" not in text, page
        assert "<img src=x" not in text, page
        assert 'href="javascript:' not in text.lower(), page
    index = (built["site"] / "index.html").read_text()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in index
    assert "&lt;img src=x onerror=" in index
    for path in built["site"].rglob("*"):
        assert path.resolve().is_relative_to(built["site"].resolve())
        assert "<" not in path.name and ">" not in path.name
    assert (built["site"] / "methods" / f"{slug(SCRIPT_NAME)}.html").is_file()


def test_csv_neutralises_formulas(tmp_path: Path, toy_registry: None) -> None:
    results = tmp_path / "results"
    write_record(results, make_record("=HYPERLINK(1)", run_id="formula"))
    build_site(results, tmp_path / "site")
    rows = read_csv(tmp_path / "site" / "data" / "runs.csv")
    assert rows[0]["method"] == "'=HYPERLINK(1)"
    data = json.loads((tmp_path / "site" / "data" / "runs.json").read_text())
    assert data["rows"][0]["method"] == "=HYPERLINK(1)", "JSON keeps the exact value"


def test_slugs_are_safe_and_distinct() -> None:
    assert slug("ties") == "ties"
    for name in ("../etc", "a/b", "..", ".hidden", "<x>", "", "a b"):
        value = slug(name)
        assert "/" not in value and not value.startswith(".") and ".." not in value, name
    names = UniqueNames()
    assert len({names.take(n) for n in ("a b", "a-b", "A-B", "a_b")}) == 4


# ------------------------------------------------------------------ pages and links
def test_every_link_resolves_to_a_file(built: dict[str, Any]) -> None:
    site = built["site"]
    checked = 0
    for page in site.rglob("*.html"):
        parser = Links()
        parser.feed(page.read_text())
        for target in parser.targets:
            if target.startswith(("http://", "https://", "#")):
                continue
            assert ":" not in target.split("/")[0], f"{page}: unexpected scheme {target}"
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_file(), f"{page.relative_to(site)} links to missing {target}"
            assert path.is_relative_to(site.resolve())
            checked += 1
    assert checked > 50


def test_run_page_shows_every_field_and_the_command(built: dict[str, Any]) -> None:
    from markupsafe import escape

    record = built["ties_grid"]
    page = built["site"] / "runs" / f"{record['run_id']}.html"
    html = page.read_text()

    def leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
        if isinstance(value, dict):
            return [leaf for k, v in value.items() for leaf in leaves(v, f"{path}.{k}")]
        if isinstance(value, list):
            return [leaf for i, v in enumerate(value) for leaf in leaves(v, f"{path}[{i}]")]
        return [(path, value)]

    for path, value in leaves(record):
        shown = value if isinstance(value, str) else json.dumps(value)
        assert str(escape(shown)) in html, f"{path}={value!r} missing from the run page"
        for key in path.replace("[", ".").split("."):
            if key and not key.rstrip("]").isdigit():
                assert str(escape(key)) in html, key
    assert f"<code>{escape(record['command'])}</code>" in html
    assert 'class="chosen"' in html, "the selected candidate is marked"
    assert json.loads((page.with_suffix(".json")).read_text()) == record


def test_method_pages_show_registry_metadata_and_results(built: dict[str, Any]) -> None:
    registered = (built["site"] / "methods" / "toy_registered.html").read_text()
    assert 'href="https://example.org/toy"' in registered
    assert "mixing weight" in registered and "0.25, 0.5" in registered
    ties = read_csv(built["site"] / "data" / "methods" / "ties.csv")
    assert sorted(r["setting"] for r in ties) == ["paper defaults", "selected on validation"]
    unregistered = (built["site"] / "methods" / "weight_average.html").read_text()
    if "weight_average" not in METHODS:
        assert "not registered in this harness" in unregistered
    script_page = (built["site"] / "methods" / f"{slug(SCRIPT_NAME)}.html").read_text()
    assert "javascript:window.__pwned=1" in script_page, "a bad reference stays visible as text"


def test_index_lists_suites_methods_and_skipped_files(built: dict[str, Any]) -> None:
    index = built["index"].read_text()
    assert built["index"] == built["site"] / "index.html"
    assert f'href="suites/{SUITE}.html"' in index
    assert "broken.json: not valid JSON" in index
    assert any("broken.json" in line for line in built["warnings"])
    suites = {r["suite"]: r for r in read_csv(built["site"] / "data" / "suites.csv")}
    assert suites[SUITE]["runs"] == "8" and suites[SUITE]["best_method"] == "individual"
    # the best method that is not a per-task baseline is named too
    assert suites[SUITE]["best_method_not_baseline"] == "ties"
    assert float(suites[SUITE]["best_method_not_baseline_average"]) == 73.0


def test_every_table_has_csv_and_json_downloads(built: dict[str, Any]) -> None:
    site = built["site"]
    for page in site.rglob("*.html"):
        parser = Links()
        parser.feed(page.read_text())
        for target in (t for t in parser.targets if t.endswith(".csv")):
            csv_path = (page.parent / target).resolve()
            json_path = csv_path.with_suffix(".json")
            rows = read_csv(csv_path)
            data = json.loads(json_path.read_text())
            assert len(rows) == len(data["rows"])
    runs = read_csv(site / "data" / "runs.csv")
    assert len(runs) == 8 and {"method_s", "cpu_rss_bytes", "command"} <= set(runs[0])


# ------------------------------------------------------------------ build safety and CLI
def test_build_replaces_only_its_own_site(tmp_path: Path, toy_registry: None) -> None:
    results = tmp_path / "results"
    write_record(results, make_record())
    site = tmp_path / "site"
    build_site(results, site)
    assert (site / MARKER).is_file()
    build_site(results, site)  # rebuilding over a previous site is fine
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(HarnessError, match="not a leaderboard site"):
        build_site(results, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_interrupted_build_keeps_the_previous_site(
    tmp_path: Path, toy_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    write_record(results, make_record())
    site = tmp_path / "site"
    build_site(results, site)
    before = sorted(p.relative_to(site) for p in site.rglob("*"))

    def half_written(site_model: Any, out: Path) -> None:
        (out / "index.html").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "render", half_written)
    with pytest.raises(KeyboardInterrupt):
        build_site(results, site)
    assert sorted(p.relative_to(site) for p in site.rglob("*")) == before
    assert "half" not in (site / "index.html").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_builds_and_validates(tmp_path: Path, toy_registry: None) -> None:
    results = tmp_path / "results"
    write_record(results, make_record())
    runner = CliRunner()
    built = runner.invoke(
        cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "s")]
    )
    assert built.exit_code == 0, built.output
    assert "site written" in built.output and (tmp_path / "s" / "index.html").is_file()
    ok = runner.invoke(cli, ["validate", str(results)])
    assert ok.exit_code == 0 and "0 problem(s)" in ok.output
    bad = make_record(run_id="bad")
    bad["tasks"]["a"]["metric"] = "high"
    bad_path = results / SUITE / "ties" / "bad.json"
    bad_path.write_text(json.dumps(bad))
    failed = runner.invoke(cli, ["validate", str(results)])
    assert failed.exit_code == 1
    assert f"{bad_path}: tasks.a.metric:" in failed.output


@pytest.mark.slow
def test_site_from_real_runs_on_the_tiny_suite(tmp_path: Path, tiny_suite_name: str) -> None:
    """End to end: the runner's own records (not hand-written ones) build a complete site.

    Marked slow: the first use of the tiny suite in a session trains its experts (seconds
    on an idle machine, shared with the other tests that use it); ``-m "not slow"`` skips.
    """
    from harness.run.runner import RunSpec, run

    results = tmp_path / "results"
    for method, seed, select in (
        ("pretrained", 0, "defaults"),
        ("weight_average", 0, "defaults"),
        ("task_arithmetic", 0, "defaults"),
        ("task_arithmetic", 1, "defaults"),
    ):
        spec = RunSpec(
            method=method,
            suite=tiny_suite_name,
            select=select,
            seed=seed,
            device="cpu",
            results_dir=results,
            progress=False,
        )
        run(spec)
    index = build_site(results, tmp_path / "site")
    rows = read_csv(index.parent / "data" / f"suite-{tiny_suite_name}.csv")
    assert {r["method"] for r in rows} == {"pretrained", "weight_average", "task_arithmetic"}
    arithmetic = row_for(rows, "task_arithmetic")
    assert arithmetic["runs"] == "2" and arithmetic["method_s_mean"] != ""
    run_pages = list((index.parent / "runs").glob("*.html"))
    assert len(run_pages) == 4
    html = run_pages[0].read_text()
    assert "harness eval --method" in html and "Every field of the record" in html


def test_validate_names_a_misplaced_record(tmp_path: Path) -> None:
    results = tmp_path / "results"
    path = write_record(results, make_record())
    moved = results / SUITE / "other_method" / path.name
    moved.parent.mkdir()
    path.rename(moved)
    failed = CliRunner().invoke(cli, ["validate", str(results)])
    assert failed.exit_code == 1
    assert f"{moved}: run_id, suite.name, method.name:" in failed.output
    assert f"<results>/{SUITE}/ties/{path.name}" in failed.output


def test_a_run_on_some_tasks_never_outranks_whole_suite_runs(
    tmp_path: Path, toy_registry: None
) -> None:
    """Means over different task lists do not compare: a two-of-eight run (``--only``)
    ranks after whole-suite runs and stays off the Pareto front."""
    results = tmp_path / "results"
    write_record(results, make_record("ties", metrics=(80.0, 60.0)))
    subset = make_record("slerp", metrics=(99.0, 99.0), method_s=0.001, run_id="slerp__only_a")
    subset["suite"]["tasks"] = ["a"]
    subset["tasks"] = {"a": subset["tasks"]["a"]}
    subset["average"], subset["normalized_average"] = 99.0, 110.0
    write_record(results, subset)
    build_site(results, tmp_path / "site")
    rows = read_csv(tmp_path / "site" / "data" / f"suite-{SUITE}.csv")
    assert [r["method"] for r in rows] == ["ties", "slerp"]
    slerp = row_for(rows, "slerp")
    assert slerp["pareto_method_s"] == "False" and slerp["pareto_extra_parameters"] == "False"
    assert row_for(rows, "ties")["pareto_method_s"] == "True"
