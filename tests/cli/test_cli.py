"""`rb` from a user's point of view: output, exit codes, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robustbench_lite.cli.main import main

TABLES = ("leaderboard.csv", "leaderboard.md", "attacks.csv")


def _rb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_plugins_with_threat_model_and_knowledge(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _rb(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert any(line.split()[:4] == ["attack", "pgd", "linf", "gradient"] for line in lines)
    assert any(line.split()[:4] == ["attack", "pgd-l2", "l2", "gradient"] for line in lines)
    assert any(line.split()[:2] == ["defense", "none"] for line in lines)


def test_run_prints_the_leaderboard_and_writes_csv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = tmp_path / "board.csv"
    code, out, _ = _rb(
        capsys, "run", "-a", "pgd", "-d", "none", "--profile", "quick", "--n", "30",
        "--results", str(tmp_path / "res"), "--csv", str(csv), "--quiet", "--wide",
    )  # fmt: skip
    assert code == 0
    assert out.startswith("| # | defense | n | clean_acc | pgd | worst Linf (eps 0.3) |")
    assert csv.read_text().splitlines()[0] == (
        "defense,n,clean_acc,pgd,worst_linf,clean_acc_hi,clean_acc_lo,pgd_hi,pgd_lo,"
        "worst_linf_hi,worst_linf_lo,flags,rank,verdict,eps_linf"
    )
    assert "Not ranked, none: incomplete: linf (eps 0.3) by gradient attacks only" in out
    assert (tmp_path / "res" / "mnist-5k" / "quick" / "none" / "pgd.json").is_file()
    code, out2, _ = _rb(
        capsys, "leaderboard", "--results", str(tmp_path / "res"), "--profile", "quick", "--wide"
    )
    assert code == 0 and out.startswith(out2)  # then what was computed, what reused
    code, fitted, _ = _rb(
        capsys, "run", "-a", "pgd", "-d", "none", "--profile", "quick", "--n", "30",
        "--results", str(tmp_path / "res"), "--quiet",
    )  # fmt: skip
    assert code == 0 and fitted.split()[:4] == ["#", "defense", "n", "clean_acc"]
    assert "Not ranked: none (incomplete: linf (eps 0.3) by gradient attacks only" in " ".join(
        fitted.split()
    )
    assert "Reused 1 file" in fitted and "none/: pgd.json" in fitted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-a", "pgdx", "-d", "none"], "unknown attack 'pgdx'; known: "),
        (["run", "-a", "pgd", "-d", "nada"], "unknown defense 'nada'; known: "),
        (["run", "-a", "pgd", "-d", "none", "--eps", "-1"], "eps must be a positive number"),
        (
            ["run", "-a", "pgd", "-d", "none", "--set", "steps=-3"],
            "steps must be at least 1, got -3",
        ),
        (["run", "-a", "pgd", "-d", "none", "--set", "stepz=3"], "no selected plugin has"),
        (["run", "-a", "pgd", "-d", "none", "--set", "steps=many"], "expected an integer"),
        (["run", "-a", "pgd", "-d", "none", "--dataset", "mnist"], "idx3-ubyte.gz not found"),
        (["run", "-a", "pgd", "-d", "none", "--eps", "abc"], "--eps abc: 'abc' is not a number"),
        (["run", "-a", "pgd", "-d", "none", "--eps", "lp:1"], "unknown threat model 'lp'"),
        (["run", "-d", "none"], "the following arguments are required: --attack"),
        (["leaderboard", "--results", "/nonexistent"], "no results in /nonexistent"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    code, out, err = _rb(capsys, *args)
    assert code == 2
    assert err.startswith("rb: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and out == ""


def test_console_script_exit_code_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "RB_HOME": str(tmp_path)}
    rb = Path(sys.executable).with_name("rb")
    command = [str(rb)] if rb.exists() else [sys.executable, "-m", "robustbench_lite.cli"]
    done = subprocess.run(
        [*command, "run", "--attack", "fgsm", "--defense", "none"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("rb: error: unknown attack 'fgsm'")
    assert "Traceback" not in done.stderr


def test_leaderboard_write_rebuilds_a_grid_s_tables_after_cells_are_copied_in(
    tmp_path: Path, capsys
) -> None:
    """A grid whose tables lag its cells (cells copied in from a GPU machine or a Ray worker's
    disk): `rb leaderboard` only reads, `--write` rewrites the tables byte for byte as a run
    would have."""
    quick = Path(__file__).resolve().parents[2] / "results" / "mnist-5k" / "quick"
    grid = tmp_path / "mnist-5k" / "quick"
    shutil.copytree(quick, grid)
    made = {name: (grid / name).read_bytes() for name in TABLES}
    for name in TABLES:  # what the grid's tables say before the copied cells are counted
        (grid / name).write_text("stale\n")
    code, _, _ = _rb(capsys, "leaderboard", "--results", str(tmp_path), "--profile", "quick")
    assert code == 0 and (grid / "leaderboard.csv").read_text() == "stale\n"  # reading only
    code, _, _ = _rb(
        capsys, "leaderboard", "--results", str(tmp_path), "--profile", "quick", "--write"
    )
    assert code == 0
    assert {name: (grid / name).read_bytes() for name in TABLES} == made


def test_dry_run_lists_the_cells_a_run_would_compute_and_does_nothing(
    tmp_path: Path, capsys
) -> None:
    """`rb run --dry-run` over the committed quick grid: every cell is current but the one whose
    file is gone; under another seed each file is stale; nothing is written or trained."""
    quick = Path(__file__).resolve().parents[2] / "results" / "mnist-5k" / "quick"
    grid = tmp_path / "res" / "mnist-5k" / "quick"
    shutil.copytree(quick, grid)
    (grid / "none" / "pgd.json").unlink()
    before = sorted(p for p in tmp_path.rglob("*"))
    args = ["run", "-a", "pgd,pgd-l2", "-d", "none,ibp", "--profile", "quick", "--quiet"]
    code, out, _ = _rb(capsys, *args, "--results", str(tmp_path / "res"), "--dry-run")
    assert code == 0
    assert out.splitlines()[0].startswith("Would compute 1 cell under ")
    assert "and reuse 3 " in out and out.split()[-2:] == ["none/pgd", "new"]
    code, out, _ = _rb(
        capsys, *args, "--results", str(tmp_path / "res"), "--dry-run", "--seed", "1"
    )
    assert code == 0 and "Would compute 4 cells" in out and "and reuse 0 " in out
    assert out.count("made under another config") == 3
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no cell or table written
