"""What each page shows, computed from the records: the site model, before any HTML.

One module per page kind (index, suite, costs, distillation, routing, method, run,
judges, cross capabilities, transferability, merge-ability), all
built on :mod:`leaderboard.pages.base`. A new view is a new :class:`PageKind` added to
``PAGE_KINDS``.
"""

from __future__ import annotations

from typing import Any

from leaderboard.cells import Run
from leaderboard.pages.base import Page, PageKind, Site, SiteData
from leaderboard.pages.costs import CostPages
from leaderboard.pages.distillation import DistillationPages
from leaderboard.pages.index import IndexPage
from leaderboard.pages.judges import JudgePages
from leaderboard.pages.mergeability import MergeabilityPages
from leaderboard.pages.method import MethodPages
from leaderboard.pages.routing import RoutingPages
from leaderboard.pages.run import RunPages
from leaderboard.pages.suite import SuitePages
from leaderboard.pages.transferability import TransferabilityPages
from leaderboard.pages.weakest_link import CrossCapabilityPages

# In this order: the site's tables and pages are listed as the kinds add them.
PAGE_KINDS: tuple[type[PageKind], ...] = (
    SuitePages,
    CostPages,
    DistillationPages,
    RoutingPages,
    MethodPages,
    RunPages,
    JudgePages,
    CrossCapabilityPages,
    TransferabilityPages,
    MergeabilityPages,
    IndexPage,
)


def build_site_model(
    runs: list[Run],
    problems: list[str],
    judge_results: list[dict[str, Any]] | None = None,
    mergeability_results: list[dict[str, Any]] | None = None,
) -> Site:
    """Every page, table and extra file of the site for ``runs`` (and judge and
    merge-ability results)."""
    data = SiteData(runs, problems, judge_results, mergeability_results)
    site = Site()
    for kind in PAGE_KINDS:
        kind(data).add_to(site)
    return site


__all__ = ["Page", "PageKind", "Site", "SiteData", "build_site_model"]
