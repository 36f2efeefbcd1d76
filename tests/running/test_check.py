"""`rb check` and result integrity: regressions fail with a diff, hand edits are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.defenses.standard import Standard
from robustbench_lite.errors import RBError
from robustbench_lite.report import leaderboard, tables
from robustbench_lite.report.plots import plot_all
from robustbench_lite.running.check.compare import compare
from robustbench_lite.running.check.rerun import check
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.files import seal
from robustbench_lite.store.models import ModelCache
from tests._helpers.doubles import resummarized


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> Path:
    """A small committed-style baseline: none x pgd and pgd-l2, quick profile, 50 samples."""
    root = tmp_path_factory.mktemp("baseline")
    runner = Runner(
        profile="quick", n=50, results_dir=root, quiet=True, cache=ModelCache(rb_home),
        save_adv=True,
    )  # fmt: skip
    runner.run(["pgd", "pgd-l2"], ["none"])
    return root / "mnist-5k" / "quick"


def _copy(baseline_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mnist-5k" / "quick"
    shutil.copytree(baseline_dir, target)
    return target


def test_unchanged_code_passes(baseline_dir: Path, tmp_path: Path, rb_home: Path) -> None:
    report = check(_copy(baseline_dir, tmp_path) / "leaderboard.csv")
    assert not report.failed, report.render(0.01)
    assert {c.cell for c in report.changes} >= {"none/clean_acc", "none/pgd", "none/worst_l2"}
    assert all(c.verdict == "ok" for c in report.changes)


def test_a_weakened_defense_fails_with_a_diff(
    no_zoo: None, baseline_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fit = Standard.fit

    def lazy_fit(self, model, x, y, **kwargs):  # trains on 100 digits: a weaker model
        real_fit(self, model, x[:100], y[:100], **kwargs)

    monkeypatch.setattr(Standard, "fit", lazy_fit)
    report = check(_copy(baseline_dir, tmp_path) / "leaderboard.csv")
    assert report.failed
    text = report.render(0.01)
    assert "| none/clean_acc |" in text and "fall" in text
    assert "rb check FAILED" in text


def test_cli_check_exit_codes(baseline_dir: Path, tmp_path: Path, capsys) -> None:
    csv = _copy(baseline_dir, tmp_path) / "leaderboard.csv"
    assert main(["check", "--baseline", str(csv), "--quiet"]) == 0
    assert "rb check passed" in capsys.readouterr().out
    assert main(["check", "--baseline", str(tmp_path / "nope.csv")]) == 2


def _board(**values: float) -> pd.DataFrame:
    return pd.DataFrame([{"defense": "ibp", "n": 100, **values}])


def test_compare_rules() -> None:
    base = _board(clean_acc=0.9, pgd=0.5, certified_acc=0.4)
    ok = compare(
        base, _board(clean_acc=0.895, pgd=0.505, certified_acc=0.4), tolerance=0.01, strict=False
    )
    assert not ok.failed
    cert = compare(
        base, _board(clean_acc=0.9, pgd=0.5, certified_acc=0.399), tolerance=0.01, strict=False
    )
    assert cert.failed, "a certified accuracy may not fall at all"
    rise = compare(
        base, _board(clean_acc=0.9, pgd=0.7, certified_acc=0.4), tolerance=0.01, strict=False
    )
    assert not rise.failed and [c.verdict for c in rise.changes if c.cell == "ibp/pgd"] == ["rise"]
    assert compare(
        base, _board(clean_acc=0.9, pgd=0.7, certified_acc=0.4), tolerance=0.01, strict=True
    ).failed
    gone = compare(base, _board(clean_acc=0.9, certified_acc=0.4), tolerance=0.01, strict=False)
    assert gone.failed and [c.verdict for c in gone.changes if c.cell == "ibp/pgd"] == ["missing"]


def test_update_rewrites_the_baseline(baseline_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cell_dir = _copy(baseline_dir, tmp_path)
    real_fit = Standard.fit
    monkeypatch.setattr(
        Standard,
        "fit",
        lambda self, model, x, y, **kw: real_fit(self, model, x[:100], y[:100], **kw),
    )
    report = check(cell_dir / "leaderboard.csv", update=True)
    assert not report.failed and any("rewritten" in n for n in report.notes)
    assert check(cell_dir / "leaderboard.csv").failed is False  # the weak model is the new normal


def test_a_subset_update_keeps_the_other_cells(baseline_dir: Path, tmp_path: Path) -> None:
    cell_dir = _copy(baseline_dir, tmp_path)
    (cell_dir / "attacks.csv").unlink()
    kept = (cell_dir / "none" / "pgd-l2.json").read_bytes()
    report = check(cell_dir / "leaderboard.csv", update=True, attacks=["pgd"])
    assert not report.failed and any("rewritten" in n for n in report.notes)
    assert (cell_dir / "none" / "pgd-l2.json").read_bytes() == kept  # not rerun: untouched
    assert (cell_dir / "none" / "pgd.json").is_file()
    assert set(pd.read_csv(cell_dir / "attacks.csv")["attack"]) >= {"pgd", "pgd-l2"}
    assert not check(cell_dir / "leaderboard.csv").failed  # still whole, still its own baseline


def test_hand_edited_result_is_refused(baseline_dir: Path, tmp_path: Path) -> None:
    cell_dir = _copy(baseline_dir, tmp_path)
    path = cell_dir / "none" / "pgd.json"
    record = json.loads(path.read_text())
    record["robust_acc"] = 0.99
    path.write_text(json.dumps(record))
    with pytest.raises(
        RBError, match=r"refusing result file .*pgd\.json: its content does not match"
    ):
        leaderboard.build(cell_dir)
    record["config"]["eps"] = 0.1
    path.write_text(json.dumps(seal(record)))
    with pytest.raises(RBError, match="its config does not match its config hash"):
        leaderboard.build(cell_dir)


def test_plots_are_drawn_from_results(baseline_dir: Path, tmp_path: Path) -> None:
    made = plot_all(_copy(baseline_dir, tmp_path))
    assert {p.name for p in made} == {"eps_sweep.png", "examples.png"}
    for p in made:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000


def _flip(cell_dir: Path, name: str, count: int) -> None:
    """Mark `count` broken samples of a baseline cell robust (a rerun then shows them falling)."""
    path = cell_dir / "none" / f"{name}.json"
    record = json.loads(path.read_text())
    robust = record["samples"]["robust"]
    broken = [
        i
        for i, (r, c) in enumerate(zip(robust, record["samples"]["clean_correct"], strict=True))
        if c and not r
    ]
    assert len(broken) >= count
    for i in broken[:count]:
        robust[i] = True
    record.update(resummarized(record))
    path.write_text(json.dumps(seal(record)))
    tables.save(leaderboard.build(cell_dir), cell_dir)


def test_a_bulk_flip_fails_and_a_handful_passes(baseline_dir: Path, tmp_path: Path) -> None:
    few = _copy(baseline_dir, tmp_path / "few")
    _flip(few, "pgd", 3)
    report = check(few / "leaderboard.csv", reuse_models=True)
    assert not report.failed, report.render()
    assert "| none/pgd | 50 | 3 | 0 | 0.12 |" in report.render()
    bulk = _copy(baseline_dir, tmp_path / "bulk")
    _flip(bulk, "pgd", 20)
    report = check(bulk / "leaderboard.csv", reuse_models=True)
    text = report.render()
    assert report.failed and "FAIL: none/pgd: 20 samples fell and 0 rose of 50" in text
    assert "rb check FAILED" in text and "sign test" in text


@pytest.mark.parametrize("damage", ["header-only", "column-removed", "abc", "nan", "no-defense"])
def test_a_baseline_that_proves_nothing_is_refused(
    baseline_dir: Path, tmp_path: Path, damage: str
) -> None:
    csv = _copy(baseline_dir, tmp_path) / "leaderboard.csv"
    frame = pd.read_csv(csv)
    if damage == "header-only":
        frame = frame.iloc[:0]
    elif damage == "column-removed":
        frame = frame.drop(columns=["pgd"])
    elif damage == "no-defense":
        frame = frame.drop(columns=["defense"])
    else:
        frame["pgd"] = frame["pgd"].astype(object)
        frame.loc[0, "pgd"] = damage
    csv.write_text(frame.to_csv(index=False))
    with pytest.raises(RBError, match="baseline"):
        check(csv, reuse_models=True)


def test_the_power_stated_in_the_readme() -> None:
    """docs/ci.md: 112 comparisons at family-wise 0.05 need 12 falls and no rises to fail a cell."""
    from robustbench_lite.stats import sign_test, smallest_detectable_fall

    assert smallest_detectable_fall(112) == 12
    assert sign_test(12, 12) < 0.05 / 112 < sign_test(11, 11)
