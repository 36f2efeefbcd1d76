"""`rb plot`: the curves are computed per sample, and the committed grid draws cleanly."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np

from robustbench_lite.report import plots
from robustbench_lite.store.cell_record import CellRecord
from tests._helpers.records import fake_cell

STANDARD = Path(__file__).resolve().parents[2] / "results" / "mnist-5k" / "standard"


def _minimal(index: list[int], distance: list[float | None]) -> CellRecord:
    return fake_cell({"index": index, "distance": distance})


def test_minimal_curve_takes_the_smallest_distance_per_sample() -> None:
    a = _minimal([0, 1, 2], [0.5, None, 2.0])
    b = _minimal([1, 2, 0], [1.0, None, 3.0])  # another order: samples are matched by index
    curve = plots._minimal_curve([a, b], np.array([0.0, 0.75, 1.5, 2.5]))
    # per sample: min(0.5, 3.0) = 0.5, min(inf, 1.0) = 1.0, min(2.0, inf) = 2.0
    assert curve.tolist() == [1.0, 2 / 3, 1 / 3, 0.0]


def test_the_committed_standard_grid_plots_without_warnings(tmp_path: Path) -> None:
    """Every defense and attack of the committed grid in two readable figures: a colour per
    defense with one legend, no overflowing legend (matplotlib warns when layout fails)."""
    cell_dir = tmp_path / "standard"
    shutil.copytree(STANDARD, cell_dir, ignore=shutil.ignore_patterns("plots", ".shards"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        made = plots.plot_all(cell_dir)
    assert {p.name for p in made} == {"eps_sweep.png", "queries.png"}
    for p in made:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000
