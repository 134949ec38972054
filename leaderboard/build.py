"""``build_site``: records → a self-contained static site, written atomically.

The site is rendered into a temporary directory beside ``out_dir`` and renamed into place
(:func:`harness.cache.atomic_path`), so an interrupted build leaves the previous site
intact. An existing ``out_dir`` is only replaced when it is a site this builder wrote
(it holds the marker file), never an unrelated directory passed by mistake.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

import harness
from harness.cache import atomic_path
from harness.errors import HarnessError
from harness.run.records import load_records
from leaderboard.cells import Run
from leaderboard.judges import load_judge_results
from leaderboard.mergeability import load_mergeability_results
from leaderboard.pages import Site, build_site_model

MARKER = ".harness-leaderboard"
STATIC_FILES = ("style.css", "table.js")


def _scalar(value: Any) -> str:
    """A record leaf as text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("leaderboard", "templates"),
        autoescape=True,  # every string from a record is escaped, in every template
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["scalar"] = _scalar
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, default=str)
    return env


def _href(root: str) -> Callable[[str | None], str | None]:
    def href(target: str | None) -> str | None:
        if not target:
            return None
        if target.startswith(("http://", "https://")):
            return target
        return root + target

    return href


def render(site: Site, out: Path) -> None:
    """Write every page, download and static file of ``site`` under ``out``."""
    env = environment()
    for page in site.pages:
        depth = page.path.count("/")
        root = "../" * depth
        html = env.get_template(page.template).render(
            **page.context,
            root=root,
            href=_href(root),
            page_path=page.path,
            version=harness.__version__,
        )
        target = out / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    for table in site.tables:
        if table.download_stem:
            table.write_downloads(out)
    for path, text in site.files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    static = out / "static"
    static.mkdir(exist_ok=True)
    for name in STATIC_FILES:
        source = resources.files("leaderboard").joinpath("static", name)
        (static / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (out / MARKER).write_text("built by `harness leaderboard build`; safe to replace\n")


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise HarnessError(f"--out {out_dir} is a file; pass a directory for the site")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise HarnessError(
            f"--out {out_dir} is a non-empty directory that is not a leaderboard site; "
            "pass a new or empty directory (the site replaces --out entirely)"
        )


def build_site(
    results_dir: Path,
    out_dir: Path,
    *,
    warn: Callable[[str], None] | None = None,
    judges_dir: Path | None = None,
    mergeability_dir: Path | None = None,
) -> Path:
    """Build the site from every valid record under ``results_dir`` (and the judge
    meta-evaluation results in ``judges_dir``, the merge-ability results in
    ``mergeability_dir``); return index.html.

    Files that are not valid records are skipped, listed on the index page and passed to
    ``warn`` (printed to stderr by default), so one bad contribution never hides the rest.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    warn = warn or (lambda line: print(line, file=sys.stderr))
    _check_replaceable(out_dir)
    loaded = load_records(results_dir)
    judge_results, judge_problems = load_judge_results(judges_dir)
    mergeability, mergeability_problems = load_mergeability_results(mergeability_dir)
    problems = [*loaded.problems, *judge_problems, *mergeability_problems]
    for problem in problems:
        warn(f"skipped {problem}")
    # pages show where a record lives inside the results, not the builder's file system
    runs = [
        Run(record, path.relative_to(results_dir) if path.is_relative_to(results_dir) else path)
        for record, path in zip(loaded.records, loaded.paths)
    ]
    site = build_site_model(runs, problems, judge_results, mergeability)
    with atomic_path(out_dir) as temporary:
        temporary.mkdir()
        render(site, temporary)
    return out_dir / "index.html"
