"""`rb check`: rerun exactly the cells of a committed leaderboard and fail when numbers fall.

The baseline must be whole: a CSV with rows, a `defense` column and numbers only, equal to the
leaderboard of the cell files beside it. Each cell is rerun and compared sample by sample: a
significant fall of a cell (exact sign test on the samples that flipped, stats.py) fails, as
does any fall of a certified accuracy the runner verified (a claimed one, the defense's word, is an
ordinary number) or a baseline number with no rerun counterpart. With an explicit `tolerance`,
aggregate falls beyond it decide instead (the old rule). A rise is reported (it is how gradient
masking shows) and fails only with `strict`. Models are retrained in a fresh cache unless told
otherwise, so a change to training code cannot hide behind a cached checkpoint.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from robustbench_lite import stats
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.bpda import NO_BPDA
from robustbench_lite.protocol.registry import defense_names
from robustbench_lite.report import invariants, leaderboard, tables
from robustbench_lite.report.columns import Column, Kind
from robustbench_lite.running.check.baseline import read_baseline
from robustbench_lite.running.check.compare import CheckReport, compare
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own.model import UserModel
from robustbench_lite.store import cell_record
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.layout import GridLayout
from robustbench_lite.store.models import ModelCache
from robustbench_lite.store.records import owned

log = logging.getLogger(__name__)


def _runner_for(
    cell: CellRecord, workdir: Path, cache: ModelCache, own: bool = False, retrain: bool = False
) -> Runner:
    """A runner that recomputes exactly this cell: same data, samples, seed, eps, configs (a
    user's model, `own`, brings its config with it)."""
    config = cell.config
    attack, defense = config["attack"], config["defense"]
    settings = {attack["name"]: attack["config"]}
    if not own:
        settings[defense["name"]] = defense["config"]
    return Runner(
        dataset=cell.dataset,
        profile=cell.profile,
        n=config["n"],
        seed=config["seed"],
        results_dir=workdir,
        eps=config["eps"],
        budget=config["budget"],
        settings=settings,
        quiet=True,
        cache=cache,
        eot=not cell.no_eot,
        retrain=retrain,
        # a declared front step's cell reruns alone, not its twin through (or without) BPDA too
        only_plain=NO_BPDA in cell.suffix if isinstance(cell.bpda, str) else None,
    )


def check(
    baseline_csv: Path,
    *,
    tolerance: float | None = None,
    strict: bool = False,
    update: bool = False,
    reuse_models: bool = False,
    workdir: Path | None = None,
    models: Sequence[UserModel] = (),
    attacks: Sequence[str] = (),
    defenses: Sequence[str] = (),
    retrain: bool = False,
) -> CheckReport:
    """Rerun the baseline's cells into `workdir` (a temporary folder by default) and compare;
    cells whose defense is the name of one of `models` (`rb check --model`) rerun that model.
    `attacks` / `defenses` rerun only those cells (names as in the baseline; comma lists). Models
    come from the zoo where it has them (so a committed cell reruns on its own weights),
    `retrain` trains them anew in a fresh cache (training regressions show statistically)."""
    baseline_csv = Path(baseline_csv)
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise RBError(f"--tolerance must be a non-negative number, got {tolerance}")
    baseline, cells = read_baseline(baseline_csv)
    cells = _chosen(cells, attacks, defenses)
    own = _own_models(models, cells)
    cell_dir = baseline_csv.parent
    with tempfile.TemporaryDirectory(prefix="rb-check-") as tmp:
        work = Path(workdir or tmp)
        cache = ModelCache() if reuse_models and not retrain else ModelCache(Path(tmp) / "home")
        notes, pairs = [], []
        moves: dict[str, list[str]] = {}
        for cell in cells:
            name = f"{cell.defense}/{cell.cell}"
            log.info("rerunning %s x %s", cell.defense, cell.cell)
            runner = _runner_for(cell, work, cache, own=cell.defense in own, retrain=retrain)
            runner.run([cell.attack], [own.get(cell.defense, cell.defense)])
            rerun = cell_record.read(runner.layout.cell(cell.defense, cell.cell))
            stored, now = cell.versions, rerun.versions
            moved = [f"{k} {stored.get(k)} -> {v}" for k, v in now.items() if stored.get(k) != v]
            if moved:
                moves.setdefault(", ".join(moved), []).append(name)
            if rerun.config_hash != cell.config_hash:
                notes.append(
                    f"{name}: its config hash changed "
                    f"({cell.config_hash[:12]} -> {rerun.config_hash[:12]}); "
                    + (
                        "the model's weights or declaration changed"
                        if cell.defense in own
                        else "the code's view of the same settings moved"
                    )
                )
            pairs.append((cell, rerun))
        for what, names in moves.items():  # one line per change of versions, not per cell
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            notes.append(f"{len(names)} cell(s) were made with {what} ({shown})")
        rerun_dir = GridLayout.of(work, cells[0].dataset, cells[0].profile).path
        rebuilt = leaderboard.build(rerun_dir)
        if attacks or defenses:  # a subset: compare its own numbers, not worst cases over all
            baseline, rebuilt = _subset(baseline, rebuilt)
        report = compare(baseline, rebuilt, tolerance=tolerance, strict=strict)
        report.notes = notes
        report.flips = [
            stats.flips(f"{c.defense}/{c.cell}", c.robust_by_index, r.robust_by_index)
            for c, r in pairs
        ]
        # Clean accuracy too, once per model (its widest cell): damaged weights show there even
        # where every robust flag is already False.
        widest: dict[str, tuple[CellRecord, CellRecord]] = {}
        for c, r in pairs:
            if c.defense not in widest or c.n > widest[c.defense][0].n:
                widest[c.defense] = (c, r)
        report.flips += [
            stats.flips(f"{d}/clean_acc", c.clean_by_index, r.clean_by_index)
            for d, (c, r) in widest.items()
        ]
        if tolerance is None:
            for f in report.flips:
                if f.p_fall < report.per_cell_level:
                    report.failures.append(
                        f"{f.cell}: {f.fell} samples fell and {f.rose} rose of {f.n} "
                        f"(p = {f.p_fall:.2g} < {report.per_cell_level:.2g})"
                    )
        report.failures.extend(invariants.violations(rerun_dir))
        if update:
            _replace_baseline(rerun_dir, cell_dir, whole=not (attacks or defenses))
            report.notes.append(f"baseline {cell_dir} rewritten from the rerun")
            report.failures.clear()
    return report


def _chosen(
    cells: list[CellRecord], attacks: Sequence[str], defenses: Sequence[str]
) -> list[CellRecord]:
    """The baseline cells of the chosen attacks and defenses (all where none is chosen)."""
    want_a = {a.strip() for item in attacks for a in item.split(",") if a.strip()}
    want_d = {d.strip() for item in defenses for d in item.split(",") if d.strip()}
    chosen = [
        c
        for c in cells
        if (not want_a or c.attack in want_a or c.cell in want_a)
        and (not want_d or c.defense in want_d)
    ]
    if not chosen:
        raise RBError(
            f"the baseline has no cells of attacks {sorted(want_a) or 'any'} on defenses "
            f"{sorted(want_d) or 'any'}"
        )
    return chosen


def _subset(baseline: pd.DataFrame, rebuilt: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and columns both a subset's rerun and its baseline have, worst cases and
    certificates left out of both (they span cells the subset did not rerun: its paired per-cell
    test decides instead; shown, they would read as new numbers that nothing compared)."""
    keep = [
        c
        for c in baseline.columns
        if c in rebuilt.columns
        and not (Column.parse(c).kind is Kind.WORST or Column.parse(c).is_certificate)
    ]
    rows = baseline["defense"].isin(rebuilt["defense"])
    return baseline.loc[rows, keep].reset_index(drop=True), rebuilt[keep].reset_index(drop=True)


def _own_models(models: Sequence[UserModel], cells: list[CellRecord]) -> dict[str, UserModel]:
    """The user models by name, each checked before any rerun; every baseline cell's defense
    must be registered or one of them."""
    own = {m.name: m for m in models}
    defenses = {c.defense for c in cells}
    for name in own:
        if name not in defenses:
            raise RBError(f"the baseline has no cells of {name}; its rows: {sorted(defenses)}")
    unknown = sorted(defenses - set(own) - set(defense_names()))
    if unknown:
        raise RBError(
            f"the baseline has cells of {', '.join(unknown)}, which is no registered defense: "
            "pass that model with --model ... --name NAME"
        )
    for model in own.values():
        model.run_checks(cells[0].dataset)
    return own


def _replace_baseline(source: Path, target: Path, *, whole: bool) -> None:
    """Put the rerun's result files in place of the baseline's and rebuild its tables (leaderboard
    and attacks.csv, as a run writes them). A `whole` rerun replaces every result file the store
    wrote (a file it did not write stays); a subset's replaces only the files it reran, so
    `--update -a pgd` keeps every other cell."""
    if whole:
        for old in GridLayout(target).records():
            if owned(old):
                old.unlink()
    for new in GridLayout(source).records():
        destination = target / new.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(new, destination)
    tables.save_grid(leaderboard.build(target), target)
