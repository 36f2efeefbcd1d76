"""The verdict people cite (issue 40): only complete evaluations are ranked, by the lower end of
the main worst case's interval, so the same weights on 6 samples never outrank themselves on
100; transfer-only and white-box-only rows are listed below, greyed, with why; and every
headline says its eps. Checked on the leaderboard CSV and in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import robustbench_lite
from robustbench_lite.cli.main import main
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.report.verdict import MIN_RANKED_N
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.models import ModelCache
from tests.report.test_site import driver  # noqa: F401  (the browser fixture)

QUICK = Path(__file__).resolve().parents[2] / "results" / "mnist-5k" / "quick"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> Path:
    """A complete row (ibp), a transfer-only row (alp), a white-box-only row (randomization),
    all from the committed quick cells, and the zoo's pgd-at weights as a user's model on 6 and
    on 100 digits (pgd and square: complete both times)."""
    root = tmp_path_factory.mktemp("verdict")
    folder = root / "mnist-5k" / "quick"
    shutil.copytree(QUICK / "ibp", folder / "ibp")
    for defense, files in {
        "alp": ["transfer.json", "transfer-l2.json", "diagnostics.json"],
        "randomization": ["pgd.json", "diagnostics.json"],
    }.items():
        (folder / defense).mkdir(parents=True)
        for name in files:
            shutil.copy(QUICK / defense / name, folder / defense / name)
    runner = Runner(profile="quick", quiet=True, cache=ModelCache(rb_home))
    model = runner.model(instantiate(defense_class("pgd-at"), "quick")).cpu()
    for n in (6, MIN_RANKED_N):
        robustbench_lite.evaluate(
            model, name=f"mine-{n}", attacks=["pgd", "square"], profile="quick", n=n,
            results=root,
        )  # fmt: skip
    return root


def test_the_csv_ranks_complete_rows_and_says_why_not(grid: Path) -> None:
    board = pd.read_csv(grid / "mnist-5k" / "quick" / "leaderboard.csv").set_index("defense")
    assert set(board[board["rank"].notna()].index) == {"ibp", f"mine-{MIN_RANKED_N}"}
    lows = board[board["rank"].notna()].sort_values("rank")["worst_linf_lo"]
    assert list(lows) == sorted(lows, reverse=True)
    assert "too few samples to rank (n=6" in board.loc["mine-6", "verdict"]
    assert "upper bound: linf (eps 0.3) by transfer only" in board.loc["alp", "verdict"]
    assert (
        "incomplete: linf (eps 0.3) by gradient attacks only"
        in board.loc["randomization", "verdict"]
    )
    assert board["eps_linf"].eq(0.3).all() and board["eps_l2"].eq(1.5).all()
    # the ranked rows lead the file, the others follow by name
    order = list(board.index)
    assert order[:2] == list(board[board["rank"].notna()].sort_values("rank").index)
    assert order[2:] == sorted(order[2:])


def test_the_site_ranks_greys_and_says_eps(
    driver: Any,  # noqa: F811
    grid: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "site"
    assert main(["--quiet", "site", "--results", str(grid), "--out", str(out)]) == 0
    driver.get((out / "index.html").as_uri())
    section = driver.find_element(By.ID, "mnist-5k-quick")
    headline = section.find_element(By.CSS_SELECTOR, "table.headline")
    headers = [h.text for h in headline.find_elements(By.CSS_SELECTOR, "thead th")]
    assert "worst Linf (eps 0.3)" in headers and "worst L2 (eps 1.5)" in headers
    ranked = [r.get_attribute("data-defense") for r in headline.find_elements(By.CSS_SELECTOR, "tbody tr")]  # fmt: skip
    assert set(ranked) == {"ibp", f"mine-{MIN_RANKED_N}"}
    greyed = section.find_elements(By.CSS_SELECTOR, "table.unranked tbody tr")
    why = {
        r.get_attribute("data-defense"): r.find_element(By.CSS_SELECTOR, "td.why").text
        for r in greyed
    }
    assert set(why) == {"alp", "randomization", "mine-6"}
    assert "upper bound" in why["alp"] and "transfer only" in why["alp"]
    assert "gradient attacks only" in why["randomization"]
    assert "too few samples" in why["mine-6"]
    color = greyed[0].find_element(By.CSS_SELECTOR, "td.why").value_of_css_property("color")
    assert color != headline.find_element(By.CSS_SELECTOR, "tbody td").value_of_css_property(
        "color"
    )  # greyed
    assert "lower end of the 95% interval" in section.find_element(By.CSS_SELECTOR, "p.rule").text
    page = out / "mnist-5k" / "quick" / "ibp.html"
    driver.get(page.as_uri())
    cite = driver.find_element(By.CSS_SELECTOR, "p.cite").text
    assert "worst Linf (eps 0.3)" in cite and "weights SHA-256" in cite and "n = 200" in cite
