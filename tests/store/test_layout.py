"""The results folder's one owner: every path comes from GridLayout, and none leaves the grid."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_lite.errors import RBError
from robustbench_lite.store.layout import GridLayout, adv_path, is_cell, shard_dir


def test_every_path_of_a_grid(tmp_path: Path) -> None:
    grid = GridLayout.of(tmp_path, "mnist-5k", "quick")
    assert grid.path == tmp_path / "mnist-5k" / "quick"
    cell = grid.cell("none", "pgd@eps=0.1")
    assert cell == grid.path / "none" / "pgd@eps=0.1.json" and is_cell(cell)
    assert adv_path(cell).name == "pgd@eps=0.1.adv.safetensors"
    assert shard_dir(cell) == grid.path / "none" / ".shards" / "pgd@eps=0.1"
    assert grid.certificate("ibp", "@eps=0.1").name == "certified@eps=0.1.json"
    assert not is_cell(grid.certificate("ibp")) and not is_cell(grid.diagnostics("ibp"))
    assert grid.leaderboard_csv.parent == grid.path == grid.plots.parent


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "x\x1b[2J", ""])
def test_a_name_that_is_a_path_is_refused(tmp_path: Path, name: str) -> None:
    grid = GridLayout.of(tmp_path, "mnist-5k", "quick")
    with pytest.raises(RBError, match="cannot name a result file"):
        grid.cell(name, "pgd")
    with pytest.raises(RBError, match="cannot name a result file"):
        grid.cell("none", name)
