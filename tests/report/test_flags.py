"""Red flags and error bars on the leaderboard: a masked model is flagged, an ordinary one is not;
every accuracy carries its 95% interval; `rb diagnose` explains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.report.flags import evidence
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.stats import wilson
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.models import ModelCache
from tests._helpers import doubles
from tests._helpers.records import clean_diagnostics, fake_cell


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    doubles.register(monkeypatch, rounding="tests._helpers.doubles:Rounding")


def _runner(root: Path, rb_home: Path, **kwargs: Any) -> Runner:
    settings = {"profile": "quick", "n": 40, "quiet": True, "budget": 300, **kwargs}
    return Runner(results_dir=root, cache=ModelCache(rb_home), **settings)


def _flags(board: Any, defense: str) -> set[str]:
    value = board.set_index("defense").loc[defense, "flags"]
    return set(str(value).split(";")) - {"", "nan"}


def test_a_masked_model_is_flagged_and_an_ordinary_one_is_not(
    registered: None, tmp_path: Path, rb_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    board = _runner(tmp_path, rb_home).run(["pgd", "square"], ["rounding", "none"])
    assert {"masking", "zero-grad"} <= _flags(board, "rounding")
    assert _flags(board, "none") == set()
    code = main(["diagnose", "rounding", "--results", str(tmp_path), "--profile", "quick"])
    out = capsys.readouterr().out
    assert (
        code == 0 and "masking: linf eps 0.3: square@budget=300 broke" in out and "zero-grad" in out
    )
    assert "indicators of attack failure per cell" in out and "    pgd: silent success " in out
    assert max(len(line) for line in out.splitlines()) <= 80  # fits a terminal


def test_white_box_only_is_flagged(tmp_path: Path, rb_home: Path) -> None:
    board = _runner(tmp_path, rb_home, n=20).run(["pgd-l2"], ["none"])
    flags = _flags(board, "none")
    # quick pgd-l2's 10 steps leave the samples that held still improving: the indicator says so
    assert "white-box-only" in flags and flags <= {"white-box-only", "incomplete-optimization"}


def test_a_row_attacked_only_by_transfer_is_flagged(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    """A transfer attack never touches the model: alone, its number is no worst case."""
    board = _runner(tmp_path, rb_home, n=20).run(["transfer", "spatial"], ["rounding"])
    assert "transfer-only" in _flags(board, "rounding")
    board = _runner(tmp_path, rb_home, n=20).run(["pgd"], ["rounding"])
    assert "transfer-only" not in _flags(board, "rounding")  # pgd attacked it beside transfer


def test_every_accuracy_carries_its_wilson_interval(tmp_path: Path, rb_home: Path) -> None:
    board = _runner(tmp_path, rb_home, n=20).run(["pgd-l2"], ["none"])
    row = board.iloc[0]
    for column in ("clean_acc", "pgd-l2", "worst_l2"):
        lo, hi = wilson(round(row[column] * 20), 20)
        assert (row[f"{column}_lo"], row[f"{column}_hi"]) == pytest.approx((lo, hi))
        assert row[f"{column}_lo"] <= row[column] <= row[f"{column}_hi"]
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson(20, 20)[1] == 1.0 and wilson(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)


def _cell(name: str, knowledge: str, robust: list[bool]) -> CellRecord:
    samples = {"robust": robust, "queries": [50] * len(robust), "indicators": {}}
    return fake_cell(samples, cell=name, knowledge=knowledge, median_success=50)


def test_a_sign_test_too_small_to_decide_says_so() -> None:
    few = [_cell("pgd", "gradient", [True] * 6), _cell("square", "scores", [False] * 3 + [True] * 3)]  # fmt: skip
    found = dict(evidence(few, clean_diagnostics()))
    assert "masking" not in found and "too few samples to test masking (n=6)" in found["undecided"]
    many = [_cell("pgd", "gradient", [True] * 60), _cell("square", "scores", [False] * 3 + [True] * 57)]  # fmt: skip
    assert {c for c, _ in evidence(many, clean_diagnostics())} == set()  # decided: not significant
