"""`rb check`: rerun exactly the cells of a committed leaderboard and fail when numbers fall.

A fall of a clean or robust accuracy by more than the tolerance fails, as does any fall of a
certified accuracy; a rise beyond the tolerance is reported (it is how gradient masking shows)
and fails only with `strict`. Models are retrained in a fresh cache unless told otherwise, so a
change to training code cannot hide behind a cached checkpoint.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite import leaderboard
from robustbench_lite.cache import ModelCache
from robustbench_lite.errors import RBError
from robustbench_lite.runner import Runner, versions

log = logging.getLogger(__name__)

NOT_ACCURACY = ("defense", "n")


@dataclass(frozen=True)
class Change:
    """One leaderboard number, before and after."""

    cell: str
    baseline: float | None
    now: float | None
    verdict: str  # "ok", "fall", "rise", "missing", "new"

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.now is None:
            return None
        return self.now - self.baseline


@dataclass
class CheckReport:
    """What moved, what it means, and whether the check fails."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: bool = False

    def render(self, tolerance: float) -> str:
        moved = [c for c in self.changes if c.verdict != "ok"]
        lines = [f"note: {note}" for note in self.notes]
        if moved:
            lines.append("| cell | baseline | now | change | verdict |")
            lines.append("|---|---:|---:|---:|---|")
            for c in moved:
                lines.append(
                    f"| {c.cell} | {_fmt(c.baseline)} | {_fmt(c.now)} | "
                    f"{_fmt(c.delta, signed=True)} | {c.verdict} |"
                )
        compared = sum(c.verdict != "new" for c in self.changes)
        status = "FAILED" if self.failed else "passed"
        lines.append(
            f"rb check {status}: {compared} numbers compared, {len(moved)} moved "
            f"beyond the tolerance of {tolerance:g}"
        )
        return "\n".join(lines) + "\n"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def compare(
    baseline: pd.DataFrame, now: pd.DataFrame, *, tolerance: float, strict: bool
) -> CheckReport:
    """Compare every accuracy column of two leaderboards, row by defense."""
    report = CheckReport()
    base_rows = {r["defense"]: r for r in baseline.to_dict(orient="records")}
    now_rows = {r["defense"]: r for r in now.to_dict(orient="records")}
    for defense in sorted(set(base_rows) | set(now_rows)):
        before, after = base_rows.get(defense, {}), now_rows.get(defense, {})
        columns = [c for c in (*before, *after) if c not in NOT_ACCURACY]
        for column in dict.fromkeys(columns):
            if column.endswith(leaderboard.EXTRA):
                continue
            b, a = _number(before.get(column)), _number(after.get(column))
            verdict = "ok"
            if b is None and a is None:
                continue
            if a is None:
                verdict = "missing"
            elif b is None:
                verdict = "new"
            elif a < b - (1e-9 if column == "certified_acc" else tolerance):
                verdict = "fall"  # a certified accuracy may not fall at all
            elif a > b + tolerance:
                verdict = "rise"
            report.changes.append(Change(f"{defense}/{column}", b, a, verdict))
            if verdict in ("fall", "missing") or (verdict == "rise" and strict):
                report.failed = True
    return report


def _runner_for(cell: dict[str, Any], workdir: Path, cache: ModelCache) -> Runner:
    """A runner that recomputes exactly this cell: same data, samples, seed, eps, configs."""
    config = cell["config"]
    attack, defense = config["attack"], config["defense"]
    return Runner(
        dataset=cell["dataset"],
        profile=cell["profile"],
        n=config["n"],
        seed=config["seed"],
        results_dir=workdir,
        eps=config["eps"],
        budget=config["budget"],
        settings={attack["name"]: attack["config"], defense["name"]: defense["config"]},
        quiet=True,
        cache=cache,
        eot=not cell.get("no_eot", False),
    )


def check(
    baseline_csv: Path,
    *,
    tolerance: float = 0.01,
    strict: bool = False,
    update: bool = False,
    reuse_models: bool = False,
    workdir: Path | None = None,
) -> CheckReport:
    """Rerun the baseline's cells into `workdir` (a temporary folder by default) and compare."""
    baseline_csv = Path(baseline_csv)
    if not baseline_csv.is_file():
        raise RBError(f"no baseline at {baseline_csv}; create one with `rb run` first")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise RBError(f"--tolerance must be a non-negative number, got {tolerance}")
    cell_dir = baseline_csv.parent
    try:
        baseline = pd.read_csv(baseline_csv)
    except (OSError, ValueError) as exc:
        raise RBError(f"cannot read baseline {baseline_csv} ({exc})") from None
    cells = leaderboard.load_cells(cell_dir)
    if not cells:
        raise RBError(f"no result files beside {baseline_csv}: nothing to rerun")
    with tempfile.TemporaryDirectory(prefix="rb-check-") as tmp:
        work = Path(workdir or tmp)
        cache = ModelCache() if reuse_models else ModelCache(Path(tmp) / "home")
        report = CheckReport()
        current = versions()
        for cell in cells:
            stored = cell.get("versions", {})
            moved = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
            if moved:
                what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in moved.items())
                report.notes.append(f"{cell['defense']}/{cell['cell']} was made with {what}")
            log.info("rerunning %s x %s", cell["defense"], cell["cell"])
            runner = _runner_for(cell, work, cache)
            runner.run([cell["attack"]], [cell["defense"]])
            rerun = leaderboard.read_cell(
                runner.cell_dir / cell["defense"] / f"{cell['cell']}.json"
            )
            if rerun["config_hash"] != cell["config_hash"]:
                report.notes.append(
                    f"{cell['defense']}/{cell['cell']}: its config hash changed "
                    f"({cell['config_hash'][:12]} -> {rerun['config_hash'][:12]}); "
                    "the code's view of the same settings moved"
                )
        rerun_dir = work / cells[0]["dataset"] / cells[0]["profile"]
        result = compare(baseline, leaderboard.build(rerun_dir), tolerance=tolerance, strict=strict)
        report.changes, report.failed = result.changes, result.failed
        if update:
            _replace_baseline(rerun_dir, cell_dir)
            report.notes.append(f"baseline {cell_dir} rewritten from the rerun")
            report.failed = False
    return report


def _replace_baseline(source: Path, target: Path) -> None:
    """Put the rerun's result files and leaderboard in place of the baseline's."""
    for old in target.glob("*/*.json"):
        old.unlink()
    for new in source.glob("*/*.json"):
        destination = target / new.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(new, destination)
    leaderboard.save(leaderboard.build(target), target)
