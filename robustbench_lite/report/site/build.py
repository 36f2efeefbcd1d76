"""`rb site`: a static leaderboard website built from the result files alone.

    SITE/index.html                         every grid found under the results, ranked
    SITE/<grid>/_attacks.html                the grid's attack leaderboard
    SITE/<grid>/<defense>.html               one page per defense of a grid
    SITE/<grid>/<defense>/<plot>.png          its eps curve, query curve and adversarial examples

No server, no network: CSS and the table-sorting script are inline, every link is relative. A grid
is a folder `<dataset>/<profile>` holding `<defense>/<cell>.json` files (at any depth under the
results folder, so `results/sweep/mnist-5k/quick` is a grid too); its leaderboard is rebuilt with
`leaderboard.build`, so a hand-edited result file is refused here as everywhere.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any

from robustbench_lite.errors import RBError
from robustbench_lite.report import plots, ranking
from robustbench_lite.report.flags import certificate_evidence, evidence
from robustbench_lite.report.leaderboard import build as build_board
from robustbench_lite.report.leaderboard import rows
from robustbench_lite.report.site.attacks import attacks_page
from robustbench_lite.report.site.defense import defense_page
from robustbench_lite.report.site.grid import Grid, relative, shown_path
from robustbench_lite.report.site.index import index_page
from robustbench_lite.store import cell_record, certificates, diagnostics
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.files import atomic_write_text, write_json
from robustbench_lite.store.layout import GridLayout, is_certificate
from robustbench_lite.store.zoo import ZOO, Zoo

log = logging.getLogger(__name__)

PROFILE_ORDER = {"paper": 0, "standard": 1, "quick": 2}
#: The attack leaderboard's page in a grid's folder: no plugin name starts with "_".
ATTACK_PAGE = "_attacks.html"


def find_grids(results: Path) -> list[Path]:
    """Every folder under `results` (or `results` itself) laid out as `<defense>/<cell>.json`:
    by results sub-root, dataset, then profile (paper, standard, quick)."""
    results = Path(results)
    found = {p.parent.parent for p in results.rglob("*/*.json")}
    grids = [d for d in found if any(not is_certificate(p) for p in GridLayout(d).records())]

    def order(d: Path) -> tuple[Any, ...]:
        rel = _rel(d, results).parts
        return len(rel), rel[:-1], PROFILE_ORDER.get(rel[-1], 9), rel[-1]

    return sorted(grids, key=order)


def _rel(folder: Path, results: Path) -> PurePosixPath:
    """The grid's path below the results folder ('<dataset>/<profile>' for the folder itself)."""
    if folder == results:
        return PurePosixPath(results.resolve().parent.name, results.resolve().name)
    return PurePosixPath(folder.relative_to(results).as_posix())


def _slug(name: str) -> str:
    """A file-name-safe version of a plugin name."""
    return re.sub(r"[^A-Za-z0-9._@=-]", "_", name)


def load_grid(folder: Path, results: Path) -> Grid:
    """A grid's leaderboard, cells, certificates, flags with evidence and attack leaderboard
    (each file verified)."""
    rel = _rel(folder, results)
    cells = cell_record.load(folder)
    layout = GridLayout(folder)
    certified = certificates.columns(folder)
    found = {
        label: evidence(group, diagnostics.of_model(layout.diagnostics(group[0].defense), key))
        + certificate_evidence(certified.get((group[0].defense, key), {}))
        for label, key, group in rows(cells)
    }
    attacks = ranking.table(folder)
    return Grid(
        source=shown_path(results) if folder == results else f"{shown_path(results)}/{rel}",
        label=" / ".join(rel.parts),
        slug=str(rel),
        frame=build_board(folder),
        cells=cells,
        certificates=certificates.load(folder),
        evidence=found,
        attacks=attacks,
        scores=ranking.scores(attacks),
        zoo=Zoo(ZOO).entries(),
    )


def _figures(cells: list[CellRecord], folder: Path) -> list[tuple[Path, str]]:
    """The defense's plots, drawn into `folder`; (path, caption)."""
    made = [
        (plots.eps_sweep(cells, folder / "eps_sweep.png"), "robust accuracy against eps"),
        (plots.query_curve(cells, folder / "queries.png"), "success rate against queries"),
        (
            plots.examples(cells, folder / "examples.png"),
            "adversarial examples: clean, adversarial (-> predicted class), perturbation",
        ),
    ]
    return [(path, caption) for path, caption in made if path is not None]


#: The files a build wrote, relative to the site folder: a rebuild removes those and only those.
MANIFEST = ".rb-site.json"


def _check_out(results: Path, out: Path) -> None:
    """The site folder may not be, contain or lie inside the results folder, nor hold result
    files of any grid: `rb site` writes pages and removes only what it wrote before."""
    r, o = results.resolve(), out.resolve()
    if o == r or o.is_relative_to(r) or r.is_relative_to(o):
        raise RBError(
            f"--out {out} overlaps the results folder {results}: write the site elsewhere "
            "(it never writes into or removes result files)"
        )
    if o.is_dir() and find_grids(o):
        raise RBError(f"--out {out} holds result files: write the site elsewhere")


def _clear_previous(out: Path) -> None:
    """Remove the files a previous build listed in its manifest, and nothing else."""
    manifest = out / MANIFEST
    try:
        listed = json.loads(manifest.read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return
    for rel in listed:
        path = (out / rel).resolve()
        if (
            path.is_relative_to(out.resolve())
            and path.suffix in (".html", ".png")
            and path.is_file()
        ):
            path.unlink()


def build(results: Path, out: Path) -> Path:
    """Write the site for every grid under `results` into `out`; returns index.html's path."""
    results, out = Path(results), Path(out)
    _check_out(results, out)
    folders = find_grids(results)
    if not folders:
        raise RBError(f"no results under {results}; run `rb run` first")
    grids = [load_grid(folder, results) for folder in folders]
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    written: list[Path] = []
    for grid in grids:
        grid_dir = out / grid.slug
        grid_dir.mkdir(parents=True, exist_ok=True)
        for defense in grid.frame["defense"]:
            name = _slug(str(defense))
            page_path = grid_dir / f"{name}.html"
            cells = grid.row_cells(str(defense))
            figures = _figures(cells, grid_dir / name) if cells else []
            written += [path for path, _ in figures]
            links = [(relative(path, grid_dir), caption) for path, caption in figures]
            index_href = relative(out / "index.html", grid_dir)
            atomic_write_text(page_path, defense_page(grid, str(defense), links, index_href))
            written.append(page_path)
            grid.pages[str(defense)] = relative(page_path, out)
        attack_path = grid_dir / ATTACK_PAGE
        atomic_write_text(attack_path, attacks_page(grid, relative(out / "index.html", grid_dir)))
        written.append(attack_path)
        grid.attack_page = relative(attack_path, out)
        log.info("site: %s (%d defenses)", grid.label, len(grid.pages))
    index = out / "index.html"
    atomic_write_text(index, index_page(grids, shown_path(results)))
    files = sorted({p.relative_to(out).as_posix() for p in [*written, index]})
    write_json(out / MANIFEST, {"files": files})
    log.info("wrote %s", index)
    return index
