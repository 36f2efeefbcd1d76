"""`rb plot`: curves that say more than a table, drawn from the result files alone.

- eps_sweep.png: robust accuracy against eps, one panel per threat model, one line per
  (defense, attack); minimal-perturbation attacks give a whole curve from one run (their
  per-sample distances).
- queries.png: success rate of query-based attacks against the number of queries.
- examples.png: clean input, adversarial input and perturbation for each defense x attack whose
  cell was run with `--save-adv`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from safetensors.torch import load_file

from robustbench_lite import data, leaderboard
from robustbench_lite.errors import RBError

log = logging.getLogger(__name__)


def _minimal_curve(cell: dict[str, Any], grid: np.ndarray) -> np.ndarray:
    """Robust accuracy at every eps of `grid` from a minimal attack's per-sample distances."""
    samples = cell["samples"]
    correct = np.array(samples["clean_correct"], dtype=bool)
    dist = np.array([np.inf if d is None else d for d in samples["distance"]], dtype=float)
    return np.array([(correct & (dist > e)).mean() for e in grid])


def eps_sweep(cells: list[dict[str, Any]], path: Path) -> Path:
    """Robust accuracy against eps per threat model; a point per cell, lines per attack."""
    panels = sorted(
        {c["threat_model"] for c in cells}, key=lambda t: leaderboard.TM_ORDER.get(t, 9)
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, tm in zip(axes[0], panels, strict=True):
        lines: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for cell in cells:
            if cell["threat_model"] != tm:
                continue
            if cell.get("minimal"):
                top = max(2 * cell["eps"], 1e-3)
                grid = np.linspace(0.0, top, 60)
                ax.plot(
                    grid,
                    _minimal_curve(cell, grid),
                    "--",
                    label=f"{cell['defense']} / {cell['attack']} (distances)",
                )
            attack = cell["attack"] + (leaderboard.NO_EOT if cell.get("no_eot") else "")
            lines[(cell["defense"], attack)].append((cell["eps"], cell["robust_acc"]))
        defenses = sorted({d for d, _ in lines})
        attacks = sorted({a for _, a in lines})
        for (defense, attack), points in sorted(lines.items()):
            points.sort()
            clean = next(c["clean_acc"] for c in cells if c["defense"] == defense)
            xs, ys = [0.0] + [p[0] for p in points], [clean] + [p[1] for p in points]
            color = plt.get_cmap("tab10")(defenses.index(defense) % 10)  # a colour per defense,
            style = ("-", "--", ":", "-.")[attacks.index(attack) % 4]  # a line style per attack
            ax.plot(xs, ys, marker="o", linestyle=style, color=color, label=f"{defense} / {attack}")
        ax.set(title=f"{tm}", xlabel="eps", ylabel="robust accuracy", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def query_curve(cells: list[dict[str, Any]], path: Path) -> Path | None:
    """Success rate of score- and label-based attacks against queries spent per sample (log
    scale); a colour per defense, a line style per attack."""
    chosen = [c for c in cells if c.get("knowledge") != "gradient" and not c.get("minimal")]
    if not chosen:
        return None
    defenses = sorted({c["defense"] for c in chosen})
    attacks = sorted({c["cell"] for c in chosen})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for cell in sorted(chosen, key=lambda c: (c["defense"], c["cell"])):
        s = cell["samples"]
        attacked = np.array(s["clean_correct"], dtype=bool)
        won = attacked & ~np.array(s["robust"], dtype=bool)
        queries = np.array(s["queries"], dtype=float)
        top = cell.get("budget") or max(1.0, float(queries.max()))
        grid = np.geomspace(1, max(top, 2), 200)
        rate = [(won & (queries <= q)).sum() / max(1, attacked.sum()) for q in grid]
        ax.plot(
            grid,
            rate,
            color=plt.get_cmap("tab10")(defenses.index(cell["defense"]) % 10),
            linestyle=("-", "--", ":", "-.")[attacks.index(cell["cell"]) % 4],
            label=f"{cell['defense']} / {cell['cell']}",
        )
    ax.set(xlabel="queries per sample", ylabel="success rate", ylim=(-0.02, 1.02), xscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def examples(cells: list[dict[str, Any]], path: Path, per_cell: int = 3) -> Path | None:
    """Clean / adversarial / perturbation for a few broken samples of each saved cell."""
    from robustbench_lite.runner import adv_path

    saved = [c for c in cells if adv_path(Path(c["_path"])).is_file()]
    if not saved:
        return None
    test = data.load(saved[0]["dataset"], "test")
    fig, axes = plt.subplots(
        len(saved), 3 * per_cell, figsize=(1.2 * 3 * per_cell, 1.3 * len(saved)), squeeze=False
    )
    for row, cell in zip(axes, saved, strict=True):
        x_adv = load_file(str(adv_path(Path(cell["_path"]))))["x_adv"].numpy()
        s = cell["samples"]
        broken = [
            i
            for i, (c, r) in enumerate(zip(s["clean_correct"], s["robust"], strict=True))
            if c and not r
        ][:per_cell]
        for k in range(per_cell):
            for j, ax in enumerate(row[3 * k : 3 * k + 3]):
                ax.axis("off")
                if k >= len(broken):
                    continue
                i = broken[k]
                clean = test.x[s["index"][i], 0].numpy()
                image = [clean, x_adv[i, 0], x_adv[i, 0] - clean][j]
                if j < 2:
                    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
                else:  # the perturbation, on its own symmetric scale
                    top = max(float(np.abs(image).max()), 1e-6)
                    ax.imshow(image, cmap="seismic", vmin=-top, vmax=top)
                if j == 1:
                    ax.set_title(f"-> {s['adv_pred'][i]}", fontsize=7)
        row[0].text(
            -0.3,
            0.5,
            f"{cell['defense']}\n{cell['cell']}",
            transform=row[0].transAxes,
            ha="right",
            va="center",
            fontsize=7,
        )
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log.info("wrote %s", path)
    return path


def plot_all(cell_dir: Path) -> list[Path]:
    """Every plot that the results in `cell_dir` support, under `cell_dir/plots/`."""
    cells = leaderboard.load_cells(cell_dir)
    if not cells:
        raise RBError(f"no results in {cell_dir}; run `rb run` first")
    out = Path(cell_dir) / "plots"
    made = [
        eps_sweep(cells, out / "eps_sweep.png"),
        query_curve(cells, out / "queries.png"),
        examples(cells, out / "examples.png"),
    ]
    return [p for p in made if p is not None]
