"""The leaderboard fitted to the terminal (`rb leaderboard`, `rb run`): never wider than the
terminal, the columns that matter kept, what was left out said."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from robustbench_lite.cli import run_view, terminal
from robustbench_lite.cli.main import main
from robustbench_lite.report import leaderboard, tables

RESULTS = Path(__file__).resolve().parents[2] / "results"
STANDARD = RESULTS / "mnist-5k" / "standard"
QUICK = RESULTS / "mnist-5k" / "quick"


@pytest.fixture(scope="module")
def board() -> pd.DataFrame:
    return leaderboard.build(STANDARD)


def _header(text: str) -> list[str]:
    """The headers of a rendered table (a header holds single spaces: `worst Linf (eps 0.3)`)."""
    return re.split(r" {2,}", text.splitlines()[0].strip())


@pytest.mark.parametrize("width", [30, 40, 60, 80, 100, 140])
def test_never_wider_than_the_terminal_and_keeps_what_matters(
    board: pd.DataFrame, width: int
) -> None:
    text = terminal.render(board, width)
    assert all(len(line) <= width for line in text.splitlines()), text
    header = _header(text)
    assert header[:2] == ["#", "defense"]  # the verdict's rank first
    lines = text.splitlines()[2 : 2 + len(board)]
    assert all(d in line for d, line in zip(board["defense"], lines, strict=True))
    if width >= 80:  # every worst case kept, with its eps where the width allows
        assert "clean_acc" in header and sum(h.startswith("worst") for h in header) == 3
    if width >= 140:
        assert {"worst Linf (eps 0.3)", "worst L2 (eps 1.5)", "worst spatial (eps 1)"} <= set(
            header
        )
    flat = " ".join(text.split())
    shown = terminal.shown_columns(board)
    # Shown columns may carry abbreviated headers; flags that do not fit are said in a note.
    left_out = len(shown) - len(header) - ("flags" in shown and "flags" not in header)
    assert f"{left_out} of {len(shown)} columns left out" in flat
    assert "`rb leaderboard --wide` or `--csv FILE` shows them" in flat


def test_columns_honours_the_environment(
    board: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    assert max(map(len, terminal.render(board).splitlines())) <= 50


def test_a_frame_that_fits_has_no_note(board: pd.DataFrame) -> None:
    small = board[["defense", "n", "clean_acc", "worst_linf"]]
    text = terminal.render(small, 80)
    assert _header(text) == ["defense", "n", "clean_acc", "worst_linf"]
    assert "left out" not in text and len(text.splitlines()) == 2 + len(small)


def test_intervals_folded_and_flags_footnoted() -> None:
    frame = pd.DataFrame(
        {
            "defense": ["alp", "none"],
            "n": [1000, 1000],
            "clean_acc": [0.964, 0.956],
            "worst_linf": [0.717, 0.0],
            "worst_linf_lo": [0.689, 0.0],
            "worst_linf_hi": [0.745, 0.004],
            "flags": ["", "masked"],
        }
    )
    text = terminal.render(frame, 100, unicode=True)
    assert _header(text) == ["defense", "n", "clean_acc", "worst_linf", "flags"]
    assert "0.717±0.028" in text and "0.000±0.004" in text and "_lo" not in text
    assert "Wilson" in text and "flag" in text.splitlines()[-1].lower()
    assert "0.717+-0.028" in terminal.render(frame, 100, unicode=False)
    narrow = terminal.render(frame, 40, unicode=True)
    assert "Flags: none masked." in narrow  # the column did not fit: said in a note


def test_cli_leaderboard_fits_and_wide_is_markdown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    assert main(["leaderboard", "--results", str(RESULTS), "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 72 and "--wide" in out
    assert main(["leaderboard", "--results", str(RESULTS), "--profile", "quick", "--wide"]) == 0
    wide = capsys.readouterr().out
    assert wide == tables.to_markdown(leaderboard.build(QUICK))


def test_run_view_shows_this_runs_cells_and_what_was_reused() -> None:
    runner = SimpleNamespace(
        reused=[QUICK / "none" / "pgd.json", QUICK / "ibp" / "certified.json"],
        computed=[QUICK / "none" / "nes.json"],
    )
    cells = run_view.columns(runner, ["pgd", "nes"], ["none", "ibp"])
    view = run_view.view(leaderboard.build(QUICK), ["none", "ibp"], cells)
    assert list(view["defense"]) == ["ibp", "none"]
    base = [c for c in view.columns if not c.endswith(("_lo", "_hi")) and c != "flags"]
    assert base == [
        "defense", "n", "clean_acc", "nes", "pgd", "worst_linf", "certified_acc", "nes_queries",
        "rank", "verdict", "eps_linf", "eps_l2", "eps_spatial",
    ]  # fmt: skip
    assert {f"{c}_lo" for c in base[2:7]} <= set(view.columns)  # every accuracy's interval
    report = run_view.report([runner], QUICK, width=200)
    assert "Computed now: 1 file (none/nes)." in report
    assert "Reused 2 files" in report and "none/: pgd.json" in report
    assert "ibp/: certified.json" in report and str(QUICK) in report
    assert run_view.report([SimpleNamespace()], QUICK) == ""
