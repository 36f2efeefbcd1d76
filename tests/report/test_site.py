"""`rb site`: the static leaderboard website, built from a small results folder and checked in
headless Chromium (Selenium): the index leads with the ranked headline table, values equal
leaderboard.csv and attacks.csv, headers sort, defense pages open with the verdict, links and
images resolve, no console errors, no horizontal scroll on a phone."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.models import ModelCache

QUICK = Path(__file__).resolve().parents[2] / "results" / "mnist-5k" / "quick"
DEFENSES = ("ibp", "none", "randomization")  # a certificate, a saved-adv cell, EOT cells


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> Path:
    """Three defenses' committed quick cells, plus a fresh pgd cell on `none` (n=20) whose
    adversarial examples are saved; leaderboard.csv written by the runner."""
    root = tmp_path_factory.mktemp("site_results")
    grid = root / "mnist-5k" / "quick"
    for defense in DEFENSES:
        shutil.copytree(QUICK / defense, grid / defense)
    # none's pgd is made below on this session's model: its committed cells (maybe of other
    # weights, which would be a row of their own) stay out.
    shutil.rmtree(grid / "none")
    runner = Runner(
        profile="quick",
        n=20,
        results_dir=root,
        quiet=True,
        save_adv=True,
        cache=ModelCache(rb_home),
    )
    runner.run(["pgd"], ["none"])
    return root


@pytest.fixture(scope="module")
def built(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["--quiet", "site", "--results", str(results), "--out", str(out)]) == 0
    return out


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.refs.append((tag, value))


def test_site_is_static_and_every_reference_resolves(built: Path) -> None:
    pages = sorted(built.rglob("*.html"))
    assert built / "index.html" in pages
    assert {p.stem for p in pages} >= {"index", *DEFENSES}
    for page in pages:
        text = page.read_text()
        assert '<meta name="viewport"' in text and "overflow-x:auto" in text
        parser = _Refs()
        parser.feed(text)
        for _tag, ref in parser.refs:
            if ref.startswith(("#", "data:")):
                continue
            assert "://" not in ref and not ref.startswith("/"), f"{page}: {ref} is not relative"
            assert (page.parent / ref.split("#")[0]).is_file(), f"{page}: {ref} does not resolve"
    examples = built / "mnist-5k" / "quick" / "none" / "examples.png"
    assert (
        examples.is_file()
        and "none/examples.png" in (examples.parent.parent / "none.html").read_text()
    )


def test_site_refuses_an_edited_result_file(results: Path, tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    cell = copy / "mnist-5k" / "quick" / "ibp" / "pgd.json"
    cell.write_text(cell.read_text().replace('"robust_acc": 0.', '"robust_acc": 0.9', 1))
    assert main(["--quiet", "site", "--results", str(copy), "--out", str(tmp_path / "s")]) == 2


# -- in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver); .ci/run installs them")  # fmt: skip
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(chromedriver))
    try:
        yield browser
    finally:
        browser.quit()


def _values(driver: Any, defense: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    rows = [f'table.{t} tr[data-defense="{defense}"] [data-col]' for t in ("board", "medians")]
    found = driver.find_elements(By.CSS_SELECTOR, ", ".join(rows))
    return {e.get_attribute("data-col"): e.get_attribute("data-value") for e in found}


def _column(driver: Any, column: str, css: str = "table.board") -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"{css} tbody tr")
    return [
        r.find_element(By.CSS_SELECTOR, f'td[data-col="{column}"]').get_attribute("data-value")
        for r in rows
    ]


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_index_in_a_browser(driver: Any, built: Path, results: Path) -> None:
    from selenium.webdriver.common.by import By

    board = pd.read_csv(results / "mnist-5k" / "quick" / "leaderboard.csv")
    driver.get((built / "index.html").as_uri())
    shot = built.parent / "index.png"  # at laptop width, as loaded
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("RB_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["RB_SCREENSHOT"])
    rows = driver.find_elements(By.CSS_SELECTOR, "table.board tbody tr")
    assert [r.get_attribute("data-defense") for r in rows] == list(board["defense"])
    for record in board.to_dict(orient="records"):
        shown = _values(driver, record["defense"])
        for column, expected in record.items():
            if column.endswith("_hi"):
                continue
            got = shown.get(column, "")
            if isinstance(expected, float) and math.isnan(expected):
                assert got == "", (record["defense"], column)
            elif isinstance(expected, str):
                assert got == expected, (record["defense"], column)
            else:
                assert got != "" and math.isclose(float(got), expected, abs_tol=1e-6), (
                    column,
                    got,
                    expected,
                )
        cell = driver.find_element(
            By.CSS_SELECTOR,
            f'table.board tr[data-defense="{record["defense"]}"] td[data-col="clean_acc"]',
        )
        assert cell.text.split("±")[0].split()[0] == f"{record['clean_acc']:.3f}"

    header = driver.find_element(By.XPATH, "//table[contains(@class,'board')]//th[.='clean_acc']")
    header.click()
    values = [float(v) for v in _column(driver, "clean_acc")]
    assert values == sorted(values) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [float(v) for v in _column(driver, "clean_acc")] == sorted(values, reverse=True)
    driver.find_element(
        By.XPATH, "//table[contains(@class,'board')]//th[.='certified_acc']"
    ).click()
    certified = _column(driver, "certified_acc")
    assert certified[0] != "" and certified[1:] == [""] * (len(certified) - 1)  # empty cells last
    driver.find_element(By.XPATH, "//table[contains(@class,'board')]//th[.='defense']").click()
    assert _column(driver, "defense") == sorted(board["defense"])
    assert _severe(driver) == []


def test_index_leads_with_the_ranked_headline(driver: Any, built: Path, results: Path) -> None:
    from selenium.webdriver.common.by import By

    board = pd.read_csv(results / "mnist-5k" / "quick" / "leaderboard.csv")
    driver.get((built / "index.html").as_uri())
    section = driver.find_element(By.ID, "mnist-5k-quick")
    tables = section.find_elements(By.TAG_NAME, "table")
    assert "headline" in tables[0].get_attribute("class")  # the verdict comes first
    headers = [h.text for h in tables[0].find_elements(By.CSS_SELECTOR, "thead th")]
    certified = [c for c in board.columns if c == "certified_acc"]
    assert headers == ["#", "defense", "n", "clean_acc", "worst Linf (eps 0.3)",
                       "worst L2 (eps 1.5)", "worst spatial (eps 1)", *certified, "flags"]  # fmt: skip
    shown = [r.get_attribute("data-defense") for r in tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")]  # fmt: skip
    ranked = board[board["rank"].notna()].sort_values("rank")
    assert shown == list(ranked["defense"]) and len(shown) >= 2
    lows = list(ranked["worst_linf_lo"])
    assert lows == sorted(lows, reverse=True)  # by the lower end of the main worst case
    assert [int(v) for v in _column(driver, "rank", "table.headline")] == list(
        range(1, len(ranked) + 1)
    )
    others = section.find_elements(By.CSS_SELECTOR, "table.unranked tbody tr")
    assert [r.get_attribute("data-defense") for r in others] == list(
        board[board["rank"].isna()]["defense"]
    )  # none: pgd alone on 20 digits
    assert "gradient attacks only" in others[0].find_element(By.CSS_SELECTOR, "td.why").text
    for record in ranked.to_dict(orient="records"):
        row = tables[0].find_element(By.CSS_SELECTOR, f'tr[data-defense="{record["defense"]}"]')
        for column in ("worst_linf", "worst_l2", "worst_spatial", "clean_acc"):
            value = row.find_element(By.CSS_SELECTOR, f'td[data-col="{column}"]').get_attribute("data-value")  # fmt: skip
            if math.isnan(record[column]):
                assert value == "", (record["defense"], column)
                continue
            assert math.isclose(float(value), record[column], abs_tol=1e-6)
            assert row.find_element(By.CSS_SELECTOR, f'[data-col="{column}_lo"]')  # its interval
    text = (built / "index.html").read_text()
    assert str(results) not in text and str(built) not in text  # no absolute local path
    assert _severe(driver) == []


def test_attack_page_ranks_the_attacks(driver: Any, built: Path, results: Path) -> None:
    from selenium.webdriver.common.by import By

    attacks = pd.read_csv(results / "mnist-5k" / "quick" / "attacks.csv")
    driver.get((built / "index.html").as_uri())
    driver.find_element(By.CSS_SELECTOR, "#mnist-5k-quick a.attacks").click()
    assert driver.current_url.endswith("mnist-5k/quick/_attacks.html")
    lines = driver.find_elements(By.CSS_SELECTOR, "table.ranking tbody tr")
    order = [(r.get_attribute("data-attack"), r.find_element(By.CSS_SELECTOR, '[data-col="threat_model"]').get_attribute("data-value")) for r in lines]  # fmt: skip
    expected = attacks.groupby(["attack", "threat_model"])["share"].mean()
    assert set(order) == set(expected.index)
    tms = {"linf": 0, "l2": 1, "spatial": 2}
    shares = [expected[a, tm] for a, tm in order]
    ranks = [(tms[tm], -share) for (_, tm), share in zip(order, shares, strict=True) if share == share]  # fmt: skip
    assert ranks == sorted(ranks)  # per threat model, best share first
    for (attack, tm), line in zip(order, lines, strict=True):
        shown = line.find_element(By.CSS_SELECTOR, '[data-col="share"]').get_attribute("data-value")  # fmt: skip
        if expected[attack, tm] == expected[attack, tm]:
            assert math.isclose(float(shown), expected[attack, tm], abs_tol=1e-6)
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.per-row tbody tr")) == len(attacks)
    overflow = driver.execute_script(
        "return Array.from(document.querySelectorAll('.scroll'))"
        ".map(e => e.scrollWidth - e.clientWidth)"
    )
    assert max(overflow) <= 1  # every table fits at laptop width (1366 px): no sideways scroll
    assert _severe(driver) == []


def test_defense_page_opens_with_its_verdict(built: Path, results: Path) -> None:
    board = pd.read_csv(results / "mnist-5k" / "quick" / "leaderboard.csv").set_index("defense")
    for defense in DEFENSES:
        text = (built / "mnist-5k" / "quick" / f"{defense}.html").read_text()
        order = [text.index(h) for h in ("<h2>Worst cases</h2>", "<h2>Flags</h2>", "<h2>Cells</h2>",
                                         "<h2>Defense hyper-parameters</h2>")]  # fmt: skip
        assert order == sorted(order)
        flags = board.loc[defense, "flags"]
        for code in [] if not isinstance(flags, str) else flags.split(";"):
            assert f'data-flag="{code}"' in text  # explained, with its evidence
        assert ('data-worst="worst_linf"' in text) and 'data-col="strongest"' in text


def test_every_page_links_images_and_phone_width(driver: Any, built: Path) -> None:
    from selenium.webdriver.common.by import By

    pages = sorted(built.rglob("*.html"))
    for page in pages:
        driver.get(page.as_uri())
        for link in driver.find_elements(By.TAG_NAME, "a"):
            target = Path(unquote(link.get_property("href").split("#")[0].removeprefix("file://")))
            assert target.is_file(), f"{page.name}: {link.get_attribute('href')}"
        for image in driver.find_elements(By.TAG_NAME, "img"):
            width = driver.execute_script(
                "return arguments[0].complete ? arguments[0].naturalWidth : 0", image
            )
            assert width > 0, f"{page.name}: {image.get_attribute('src')} did not load"
        assert _severe(driver) == [], page.name
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        for page in pages:
            driver.get(page.as_uri())
            wide, view = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert view == 375 and wide <= view, f"{page.name} scrolls sideways: {wide} > {view}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
