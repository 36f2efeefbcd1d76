"""The comparison `rb check` decides by: every accuracy of a rerun leaderboard against its
baseline's, and the report of what moved (the per-sample sign test itself lives in stats.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from robustbench_lite import stats
from robustbench_lite.report.columns import Column, Kind
from robustbench_lite.stats import Flips

NOT_ACCURACY = ("defense", "n", "flags", "rank", "verdict")
CSV_ROUNDING = 1e-6  # leaderboard.csv keeps 6 decimals


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
    flips: list[Flips] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    tolerance: float | None = None  # None: the paired test decides
    strict: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def per_cell_level(self) -> float:
        return stats.LEVEL / max(1, len(self.flips))

    def render(self, tolerance: float | None = None) -> str:
        tolerance = self.tolerance if tolerance is None else tolerance
        lines = [f"note: {note}" for note in self.notes]
        moved = [c for c in self.changes if c.verdict != "ok"]
        if moved:
            lines.append("| number | baseline | now | change | verdict |")
            lines.append("|---|---:|---:|---:|---|")
            for c in moved:
                lines.append(
                    f"| {c.cell} | {_fmt(c.baseline)} | {_fmt(c.now)} | "
                    f"{_fmt(c.delta, signed=True)} | {c.verdict} |"
                )
        flipped = [f for f in self.flips if f.fell or f.rose]
        if flipped:
            lines.append("| cell | samples | fell | rose | p (fall) |")
            lines.append("|---|---:|---:|---:|---:|")
            for f in flipped:
                lines.append(f"| {f.cell} | {f.n} | {f.fell} | {f.rose} | {f.p_fall:.2g} |")
        lines.extend(f"FAIL: {reason}" for reason in self.failures)
        rule = (
            f"aggregate falls beyond {tolerance:g}"
            if tolerance is not None
            else f"an exact sign test on flipped samples at level {stats.LEVEL:g}, Bonferroni "
            f"over {len(self.flips)} cells (each at {self.per_cell_level:.2g})"
        )
        status = "FAILED" if self.failed else "passed"
        lines.append(
            f"rb check {status}: {len(self.flips)} cells rerun and compared sample by sample, "
            f"{sum(c.verdict != 'new' for c in self.changes)} leaderboard numbers compared; "
            f"rule: {rule}; {len(self.failures)} failure(s)"
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
    baseline: pd.DataFrame, now: pd.DataFrame, *, tolerance: float | None, strict: bool
) -> CheckReport:
    """Compare every accuracy column of two leaderboards, row by defense.

    A certified accuracy the runner verified may not fall at all and a baseline number must have
    a counterpart. With a tolerance, a fall beyond it fails (a rise too, if strict); without one,
    moves are only reported as lower/higher and the paired per-sample test decides. A claimed
    certified accuracy (the defense's word) is such an ordinary number, never a certificate."""
    report = CheckReport(tolerance=tolerance, strict=strict)
    base_rows = {r["defense"]: r for r in baseline.to_dict(orient="records")}
    now_rows = {r["defense"]: r for r in now.to_dict(orient="records")}
    slack = 0.0 if tolerance is None else tolerance
    for defense in sorted(set(base_rows) | set(now_rows)):
        before, after = base_rows.get(defense, {}), now_rows.get(defense, {})
        columns = [c for c in (*before, *after) if c not in NOT_ACCURACY]
        for column in dict.fromkeys(columns):
            parsed = Column.parse(column)
            if not parsed.is_value or parsed.kind is Kind.EPS:
                continue
            b, a = _number(before.get(column)), _number(after.get(column))
            if b is None and a is None:
                continue
            certificate = Column.parse(column).kind is Kind.CERTIFIED
            if a is None:
                verdict = "missing"
            elif b is None:
                verdict = "new"
            elif a < b - (0.0 if certificate else slack) - CSV_ROUNDING:
                verdict = "fall" if certificate or tolerance is not None else "lower"
            elif a > b + slack + CSV_ROUNDING:
                verdict = "rise" if tolerance is not None else "higher"
            else:
                verdict = "ok"
            name = f"{defense}/{column}"
            report.changes.append(Change(name, b, a, verdict))
            if verdict == "missing":
                report.failures.append(f"{name}: in the baseline, but the rerun has no number")
            elif verdict == "fall":
                report.failures.append(f"{name}: fell from {_fmt(b)} to {_fmt(a)}")
            elif verdict == "rise" and strict:
                report.failures.append(f"{name}: rose from {_fmt(b)} to {_fmt(a)} (--strict)")
    return report
