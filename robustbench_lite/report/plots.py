"""`rb plot`: curves that say more than a table, drawn from the result files alone.

- eps_sweep.png: robust accuracy against eps, one panel per threat model, a colour per defense:
  the per-sample worst case over attacks, each attack's point, and the whole curve that
  minimal-perturbation attacks give from one run (their per-sample distances).
- queries.png: success rate of query-based attacks against the number of queries, a panel per
  attack.
- examples.png: clean input, adversarial input and perturbation for each defense x attack whose
  cell was run with `--save-adv`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from safetensors.torch import load_file

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import load_dataset
from robustbench_lite.report.columns import TM_ORDER
from robustbench_lite.report.leaderboard import rows, worst_case
from robustbench_lite.store import cell_record
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.layout import GridLayout, adv_path

log = logging.getLogger(__name__)


def _minimal_curve(cells: list[CellRecord], grid: np.ndarray) -> np.ndarray:
    """Robust accuracy at every eps of `grid` from minimal attacks' per-sample distances (the
    smallest any of `cells` found per sample; samples all of them saw)."""
    per_cell = []
    for cell in cells:
        s = cell.samples
        distances = [math.inf if d is None else d for d in s.distance]
        rows = zip(s.index, s.clean_correct, distances, strict=True)
        per_cell.append({i: (c, d) for i, c, d in rows})
    common = sorted(set(per_cell[0]).intersection(*per_cell[1:]))
    correct = np.array([all(p[i][0] for p in per_cell) for i in common], dtype=bool)
    dist = np.array([min(p[i][1] for p in per_cell) for i in common], dtype=float)
    return np.array([(correct & (dist > e)).mean() for e in grid])


def _colors(labels: list[str]) -> dict[str, Any]:
    """A colour per row label, the same in every panel."""
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _legend(fig: Any, colors: dict[str, Any], styles: list[tuple[str, str, str]]) -> None:
    """One legend for the figure, right of the panels: a line per defense, then the styles."""
    handles = [Line2D([], [], color=c, lw=2, label=label) for label, c in colors.items()]
    handles += [Line2D([], [], color="gray", ls=ls, marker=m, label=t) for ls, m, t in styles]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def _grid_rows(cells: list[CellRecord]) -> list[tuple[str, list[CellRecord]]]:
    """(row label, cells) per leaderboard row, leaving out the no-EOT cells (a comparison, not
    part of any worst case)."""
    out = []
    for label, _, group in rows(cells):
        kept = [c for c in group if not c.no_eot]
        if kept:
            out.append((label, kept))
    return out


def eps_sweep(cells: list[CellRecord], path: Path) -> Path:
    """Robust accuracy against eps, a panel per threat model and a colour per defense: the
    per-sample worst case over attacks at each eps (solid), each attack's own point (dots),
    and the whole curve minimal attacks' distances give (dashed)."""
    rows = _grid_rows(cells)
    colors = _colors([label for label, _ in rows])
    panels = sorted(
        {c.threat_model for _, g in rows for c in g},
        key=lambda t: TM_ORDER.get(t, 9),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, tm in zip(axes[0], panels, strict=True):
        for label, group in rows:
            mine = [c for c in group if c.threat_model == tm]
            if not mine:
                continue
            color = colors[label]
            minimal = [c for c in mine if c.minimal]
            if minimal:
                grid = np.linspace(0.0, max(2 * max(c.eps for c in minimal), 1e-3), 60)
                ax.plot(grid, _minimal_curve(minimal, grid), "--", color=color, lw=1)
            by_eps: dict[float, list[CellRecord]] = defaultdict(list)
            for cell in mine:
                by_eps[cell.eps].append(cell)
                ax.plot(cell.eps, cell.robust_acc, ".", color=color, alpha=0.4, ms=4)
            clean = max(group, key=lambda c: c.n).clean_acc
            xs, ys = [0.0], [clean]
            for eps in sorted(by_eps):
                xs.append(eps)
                ys.append(worst_case(by_eps[eps])[0])
            ax.plot(xs, ys, "o-", color=color, ms=4)
        ax.set(title=tm, xlabel="eps", ylabel="robust accuracy", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    styles = [
        ("-", "o", "worst case over attacks"),
        ("", ".", "one attack"),
        ("--", "", "minimal attacks' distances"),
    ]
    _legend(fig, colors, styles)
    return _save(fig, path)


def query_curve(cells: list[CellRecord], path: Path) -> Path | None:
    """Success rate of score- and label-based attacks against queries spent per sample (log
    scale): a panel per attack, a colour per defense."""
    rows = [
        (label, [c for c in g if not c.white_box and not c.minimal])
        for label, g in _grid_rows(cells)
    ]
    rows = [(label, g) for label, g in rows if g]
    if not rows:
        return None
    colors = _colors([label for label, _ in rows])
    attacks = sorted({c.cell for _, g in rows for c in g})
    ncols = min(3, len(attacks))
    nrows = -(-len(attacks) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False, sharey=True
    )
    for ax in axes.flat[len(attacks) :]:
        ax.axis("off")
    for ax, attack in zip(axes.flat, attacks, strict=False):
        for label, group in rows:
            for cell in (c for c in group if c.cell == attack):
                s = cell.samples
                attacked = np.array(s.clean_correct, dtype=bool)
                won = attacked & ~np.array(s.robust, dtype=bool)
                queries = np.array(s.queries, dtype=float)
                top = cell.budget or max(1.0, float(queries.max()))
                grid = np.geomspace(1, max(top, 2), 200)
                rate = [(won & (queries <= q)).sum() / max(1, attacked.sum()) for q in grid]
                ax.plot(grid, rate, color=colors[label])
        ax.set(title=attack, xscale="log", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("queries per sample")
    for ax in axes[:, 0]:
        ax.set_ylabel("success rate")
    _legend(fig, colors, [])
    return _save(fig, path)


def _clean_images(cell: CellRecord, stored: dict[str, Any]) -> np.ndarray | None:
    """A saved cell's clean inputs: stored beside x_adv (`x`), else its registered dataset's."""
    if "x" in stored:
        return stored["x"].numpy()
    try:
        test = load_dataset(cell.dataset, "test")
    except RBError:
        return None
    return test.x[: cell.n].numpy()


def _picture(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) -> what imshow draws: H x W in gray, or H x W x 3 in colour."""
    return (image[0], "gray") if image.shape[0] == 1 else (image.transpose(1, 2, 0), None)


def examples(cells: list[CellRecord], path: Path, per_cell: int = 3) -> Path | None:
    """Clean / adversarial / perturbation for a few broken samples of each saved cell."""
    saved = [c for c in cells if c.source is not None and adv_path(c.source).is_file()]
    if not saved:
        return None
    fig, axes = plt.subplots(
        len(saved), 3 * per_cell, figsize=(1.2 * 3 * per_cell, 1.3 * len(saved)), squeeze=False
    )
    for row, cell in zip(axes, saved, strict=True):
        assert cell.source is not None
        stored = load_file(str(adv_path(cell.source)))
        x_adv = stored["x_adv"].numpy()
        clean = _clean_images(cell, stored)
        s = cell.samples
        broken = [
            i for i, (c, r) in enumerate(zip(s.clean_correct, s.robust, strict=True)) if c and not r
        ][:per_cell]
        for k in range(per_cell):
            for j, ax in enumerate(row[3 * k : 3 * k + 3]):
                ax.axis("off")
                if k >= len(broken) or (clean is None and j != 1):
                    continue
                i = broken[k]
                if j == 2:  # the perturbation, summed over channels, on its own symmetric scale
                    delta = (x_adv[i] - clean[i]).sum(axis=0)  # type: ignore[index]
                    top = max(float(np.abs(delta).max()), 1e-6)
                    ax.imshow(delta, cmap="seismic", vmin=-top, vmax=top)
                    continue
                image, cmap = _picture(x_adv[i] if j == 1 else clean[i])  # type: ignore[index]
                ax.imshow(image.clip(0, 1), cmap=cmap, vmin=0, vmax=1)
                if j == 1:
                    ax.set_title(f"-> {s.adv_pred[i]}", fontsize=7)
        row[0].text(
            -0.3,
            0.5,
            f"{cell.defense}\n{cell.cell}",
            transform=row[0].transAxes,
            ha="right",
            va="center",
            fontsize=7,
        )
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # keeps the legend right of the panels
    plt.close(fig)
    log.info("wrote %s", path)
    return path


def plot_all(cell_dir: Path) -> list[Path]:
    """Every plot that the results in `cell_dir` support, under `cell_dir/plots/`."""
    cells = cell_record.load(cell_dir)
    if not cells:
        raise RBError(f"no results in {cell_dir}; run `rb run` first")
    out = GridLayout(Path(cell_dir)).plots
    made = [
        eps_sweep(cells, out / "eps_sweep.png"),
        query_curve(cells, out / "queries.png"),
        examples(cells, out / "examples.png"),
    ]
    return [p for p in made if p is not None]
