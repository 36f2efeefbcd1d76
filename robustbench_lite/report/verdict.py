"""The verdict: which rows are complete evaluations, and their rank. One definition, read by the
leaderboard CSV (`rank`, `verdict`), the terminal board, README's table and the site.

A row is complete when, for each threat model it was attacked in (at its default eps), an attack
that queries the model itself ran on its samples: for a pixel ball (Linf, L2) a white-box
attack and a gradient-free one (score- or label-based, not a transfer attack); for the spatial
threat model (where the suite has no white-box attack) a gradient-free one; and when its
diagnostics are present and of its weights, and its weights are the shipped ones (or the user's
own). Complete rows on at least MIN_RANKED_N samples are ranked by the lower end of the 95%
interval of the main threat model's worst case (so the same model on fewer samples never
outranks itself on more), then by clean accuracy; every other row is listed below, with why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from robustbench_lite.protocol.threat_models import TM
from robustbench_lite.report.columns import TM_ORDER, Column, Kind, Stat
from robustbench_lite.store.cell_record import CellRecord

#: Rows on fewer test samples are listed, not ranked: their interval spans too much to order.
MIN_RANKED_N = 100
#: Flags that make a row incomplete, with the reason in words.
BLOCKING = {
    "no-diagnostics": "diagnostics missing or of other weights",
    "weights-not-shipped": "weights not shipped",
    "other-zoo": "weights from another zoo",
}
RULE = (
    f"Ranked: complete evaluations on at least {MIN_RANKED_N} samples, by the lower end of the "
    "95% interval of the main threat model's worst case, then clean accuracy. Complete: for "
    "each threat model attacked, a white-box and a gradient-free attack that queries the model "
    "itself (spatial: a gradient-free one), diagnostics of its weights, and shipped (or your "
    "own) weights. Every other row is listed below the ranked ones, with why."
)


@dataclass(frozen=True)
class Standing:
    """A row's place in the verdict: its rank (None when not ranked), whether it is a complete
    evaluation, and why it is not ranked, in words."""

    rank: int | None
    complete: bool
    reasons: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """`ranked`, or the reasons in words, for the CSV's `verdict` column."""
        return "ranked" if self.rank is not None else "; ".join(self.reasons)


def _eps_only(column: Column) -> bool:
    """A column at the profile's settings, at its threat model's default eps or another one."""
    return all(p.startswith("eps=") for p in column.overrides.split("@")[1:])


def _missing(cells: Sequence[CellRecord]) -> list[str]:
    """What each threat model and eps of a row lacks, in words."""
    by_tm: dict[tuple[str, float], list[CellRecord]] = {}
    for cell in cells:
        if not cell.no_eot:  # a budget or hyper-parameter override counts: same ball, verified
            by_tm.setdefault((cell.threat_model, float(cell.eps)), []).append(cell)
    out = []
    for tm, eps in sorted(by_tm, key=lambda k: (TM_ORDER.get(k[0], 9), k[1])):
        group, at = by_tm[tm, eps], f"{tm} (eps {eps:g})"
        own = [c for c in group if not c.is_transfer]
        white = [c for c in own if c.white_box]
        free = [c for c in own if not c.white_box]
        if not own:
            out.append(f"upper bound: {at} by transfer only")
        elif tm != TM.SPATIAL and not free:
            out.append(f"incomplete: {at} by gradient attacks only")
        elif tm != TM.SPATIAL and not white:
            out.append(f"incomplete: {at} without a white-box attack")
        elif not free:
            out.append(f"incomplete: {at} without a gradient-free attack")
    return out


def reasons(row: Mapping[str, Any], cells: Sequence[CellRecord]) -> tuple[list[str], list[str]]:
    """Why a row is incomplete, and why else it is not ranked (both empty: it is ranked)."""
    incomplete = _missing(cells)
    codes = [c for c in str(row.get("flags") or "").split(";") if c]
    incomplete += [BLOCKING[c] for c in codes if c in BLOCKING]
    n: Any = row.get("n")
    small = isinstance(n, int | float) and not math.isnan(n) and n < MIN_RANKED_N
    return incomplete, ([f"too few samples to rank (n={int(n)} < {MIN_RANKED_N})"] if small else [])


def headline_columns(columns: Sequence[str]) -> list[str]:
    """The worst cases a headline shows, main threat model first: each threat model's at its
    default eps, or, for a threat model run only at other eps, those (named by their eps)."""
    found = [Column.parse(c) for c in columns]
    worst = [c for c in found if c.kind is Kind.WORST and c.is_value and _eps_only(c)]
    default = {c.base for c in worst if c.is_headline}
    shown = [c for c in worst if c.is_headline or c.base not in default]
    shown.sort(key=lambda c: (TM_ORDER.get(c.base, 9), c.eps or 0.0))
    return [c.name for c in shown]


def main_column(columns: Sequence[str]) -> str | None:
    """The worst case the verdict ranks by: the headline's first."""
    heads = headline_columns(columns)
    return heads[0] if heads else None


def standings(
    rows: Sequence[Mapping[str, Any]], cells_of: Mapping[str, Sequence[CellRecord]]
) -> dict[str, Standing]:
    """Row label -> its standing; ranks 1.. over the ranked rows."""
    main = main_column(list(rows[0])) if rows else None
    why = {str(r["defense"]): reasons(r, cells_of.get(str(r["defense"]), [])) for r in rows}

    low_column = Column.parse(main).of(Stat.LO).name if main else None

    def key(row: Mapping[str, Any]) -> tuple[float, float, str]:
        low = row.get(low_column) if low_column else None
        low = -math.inf if low is None or (isinstance(low, float) and math.isnan(low)) else low
        return -float(low), -float(row["clean_acc"]), str(row["defense"])

    ranked = sorted((r for r in rows if not any(why[str(r["defense"])])), key=key)
    out = {str(r["defense"]): Standing(i, True) for i, r in enumerate(ranked, start=1)}
    for row in rows:
        label = str(row["defense"])
        if label not in out:
            incomplete, other = why[label]
            out[label] = Standing(None, not incomplete, tuple(incomplete + other))
    return out


def order(rows: Sequence[Mapping[str, Any]], standing: Mapping[str, Standing]) -> list[str]:
    """Row labels in verdict order: ranked first by rank, then the others by name."""
    labels = [str(r["defense"]) for r in rows]
    return sorted(labels, key=lambda lab: (standing[lab].rank or math.inf, lab))
