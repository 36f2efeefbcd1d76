"""Attacks judged too: deliberately broken attacks are caught by the matching indicator of
attack failure (read from the query stream) and rank below PGD in `rb attacks`, the honest ones
raise none; and the transfer attack breaks the masked test defense where PGD does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.report import ranking
from robustbench_lite.report.flags import evidence
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store import cell_record
from robustbench_lite.store.models import ModelCache
from tests._helpers import doubles
from tests._helpers.records import clean_diagnostics

BROKEN = {
    "broken-first": ("tests._helpers.broken_attacks:FirstIterate", "silent-success"),
    "broken-tiny": ("tests._helpers.broken_attacks:TinyStep", "incomplete-optimization"),
    "broken-last": ("tests._helpers.broken_attacks:LastNotBest", "silent-success"),
}
HONEST = ["pgd", "apgd", "square", "nes", "transfer"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> Path:
    """Honest and broken attacks on the undefended quick model, 60 digits."""
    root = tmp_path_factory.mktemp("ranking")
    with pytest.MonkeyPatch.context() as mp:
        doubles.register(mp, **{name: target for name, (target, _) in BROKEN.items()})
        runner = Runner(profile="quick", n=60, results_dir=root, quiet=True,
                        cache=ModelCache(rb_home))  # fmt: skip
        runner.run([*HONEST, *BROKEN], ["none"])
    return root / "mnist-5k" / "quick"


def _flags_of(cell_dir: Path, name: str) -> set[str]:
    cell = next(c for c in cell_record.load(cell_dir) if c.attack == name)
    return {code for code, _ in evidence([cell], clean_diagnostics())}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_attack_is_flagged_and_ranks_below_pgd(grid: Path, name: str) -> None:
    assert BROKEN[name][1] in _flags_of(grid, name)
    frame = ranking.table(grid)
    share = frame.set_index("attack")["share"]
    assert share[name] < share["pgd"]


@pytest.mark.parametrize("name", HONEST)
def test_the_honest_attacks_raise_no_indicator(grid: Path, name: str) -> None:
    flagged = _flags_of(grid, name) & {
        "silent-success",
        "incomplete-optimization",
        "non-converging",
    }
    assert not flagged


def test_rb_attacks_ranks_them_and_writes_attacks_csv(grid: Path, capsys: Any) -> None:
    root = grid.parent.parent
    assert main(["attacks", "--results", str(root), "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    assert out.index("pgd") < out.index("broken-first")  # best first
    assert (grid / "attacks.csv").is_file()


def test_transfer_breaks_a_masked_defense_where_pgd_does_not(tmp_path: Path, rb_home: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        doubles.register(mp, rounding="tests._helpers.doubles:Rounding")
        board = Runner(profile="quick", n=40, results_dir=tmp_path, quiet=True,
                       cache=ModelCache(rb_home)).run(["pgd", "transfer"], ["rounding"])  # fmt: skip
    row = board.set_index("defense").loc["rounding"]
    assert row["transfer"] < row["pgd"] - 0.3
    assert "transfer-beats-white-box" in row["flags"]
