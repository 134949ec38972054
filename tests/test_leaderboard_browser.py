"""The built leaderboard in a real browser: headless Chromium opens it from file://.

Needs Debian's ``chromium`` and ``chromium-driver`` (README: ``apt-get install -y chromium
chromium-driver``; .ci/run installs them). Selenium is pointed at /usr/bin/chromedriver so
Selenium Manager never downloads anything; without them the tests skip and say why.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leaderboard.build import build_site
from leaderboard.names import slug
from tests.test_leaderboard import (
    IMG_NAME,
    SCRIPT_NAME,
    SUITE,
    install_toy_registry,
    write_standard_results,
)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOW_TO_INSTALL = "as root: apt-get update && apt-get install -y chromium chromium-driver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("browser-site")
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_toy_registry(monkeypatch)
        written = write_standard_results(root / "results")
        index = build_site(root / "results", root / "site", warn=lambda line: None)
    return {"index": index, "root": root / "site", **written}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.skip(f"{path} is missing; {HOW_TO_INSTALL}")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def suite_url(site: dict[str, Any], fragment: str = "") -> str:
    return (site["root"] / "suites" / f"{SUITE}.html").as_uri() + fragment


def visible_rows(driver: Any) -> list[Any]:
    return [
        r for r in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr") if r.is_displayed()
    ]


def column(driver: Any, key: str) -> list[str]:
    return [
        row.find_element(By.CSS_SELECTOR, f'td[data-key="{key}"]').get_attribute("data-sort")
        for row in visible_rows(driver)
    ]


def methods_shown(driver: Any) -> list[str]:
    return [
        row.find_element(By.CSS_SELECTOR, 'td[data-key="method"]').text
        for row in visible_rows(driver)
    ]


def click_header(driver: Any, key: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#results th[data-key="{key}"] button').click()


def test_sort_by_a_column_survives_a_reload(browser: Any, site: dict[str, Any]) -> None:
    browser.get(suite_url(site))
    assert browser.title == f"{SUITE} — leaderboard"
    click_header(browser, "average")  # numbers sort best first
    averages = [float(v) for v in column(browser, "average")]
    assert averages == sorted(averages, reverse=True) and len(averages) == 6
    assert methods_shown(browser)[0] == "individual"
    click_header(browser, "average")
    averages = [float(v) for v in column(browser, "average")]
    assert averages == sorted(averages)
    assert "sort=average" in browser.current_url and "dir=asc" in browser.current_url
    browser.refresh()
    assert [float(v) for v in column(browser, "average")] == averages
    header = browser.find_element(By.CSS_SELECTOR, '#results th[data-key="average"]')
    assert header.get_attribute("aria-sort") == "ascending"
    click_header(browser, "method")  # text sorts A→Z
    names = column(browser, "method")
    assert names == sorted(names)
    click_header(browser, "family")  # a plain text column sorts by its text
    families = column(browser, "family")
    assert families == sorted(families) and families[0] == "baseline"


def test_filters_live_in_the_url(browser: Any, site: dict[str, Any]) -> None:
    browser.get(suite_url(site))
    Select(browser.find_element(By.CSS_SELECTOR, ".family-filter")).select_by_value("merging")
    shown = methods_shown(browser)
    assert "individual" not in shown and IMG_NAME not in shown and "ties" in shown
    box = browser.find_element(By.CSS_SELECTOR, ".text-filter")
    box.send_keys("validation")
    assert methods_shown(browser) == ["ties"]
    assert "showing 1 of 6" in browser.find_element(By.CSS_SELECTOR, ".count").text
    linked = browser.current_url
    assert "family=merging" in linked and "q=validation" in linked
    browser.get(suite_url(site))  # a fresh view shows everything ...
    assert len(visible_rows(browser)) == 6
    browser.get(linked)  # ... and the linked view restores the filters
    browser.refresh()
    assert methods_shown(browser) == ["ties"]
    assert browser.find_element(By.CSS_SELECTOR, ".text-filter").get_attribute("value") == (
        "validation"
    )
    selected = Select(browser.find_element(By.CSS_SELECTOR, ".family-filter"))
    assert selected.first_selected_option.get_attribute("value") == "merging"


def test_follow_links_to_a_run_and_a_method(
    browser: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    browser.get(suite_url(site, "#sort=average&dir=desc&q=paper+defaults&family=merging"))
    ties = next(r for r in visible_rows(browser) if r.text.startswith("ties"))
    assert "3" in ties.find_element(By.CSS_SELECTOR, 'td[data-key="runs"]').text
    assert "±" in ties.find_element(By.CSS_SELECTOR, 'td[data-key="average"]').text
    ties.find_element(By.LINK_TEXT, "seed 1").click()
    record = site["ties_seeds"][1]
    WebDriverWait(browser, 10).until(lambda d: record["run_id"] in d.title)
    command = browser.find_element(By.CSS_SELECTOR, "#reproduce pre").text
    assert command == record["command"]
    assert "cpu:x86_64 x2 threads" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    browser.save_screenshot(str(tmp_path / "run.png"))
    browser.find_element(By.LINK_TEXT, "ties").click()
    WebDriverWait(browser, 10).until(lambda d: d.title.startswith("ties"))
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "Method ties"
    rows = browser.find_elements(By.CSS_SELECTOR, "#method-results tbody tr")
    assert len(rows) == 2
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_hostile_names_are_text_not_code(
    browser: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    for page in (
        site["index"],
        site["root"] / "suites" / f"{SUITE}.html",
        site["root"] / "methods" / f"{slug(SCRIPT_NAME)}.html",
        site["root"] / "methods" / f"{slug(IMG_NAME)}.html",
    ):
        browser.get(page.as_uri())
        assert browser.execute_script("return window.__pwned === undefined"), page
        assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    browser.get((site["root"] / "methods" / f"{slug(SCRIPT_NAME)}.html").as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Method {SCRIPT_NAME}"
    browser.get(site["index"].as_uri())
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#methods td a")]
    assert SCRIPT_NAME in names and IMG_NAME in names
    browser.save_screenshot(str(tmp_path / "index.png"))
    assert (tmp_path / "index.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
