"""The attack leaderboard: attacks judged like defenses. Per model row and threat model, each
attack's share of the per-sample worst case (of the samples any attack of that threat model
broke, how many it broke), its median queries to success, its indicators of failure, and for
minimal attacks AttackBench's local optimality (Cinà et al. 2024: the area between its robust
accuracy against distance and the per-sample best over all minimal attacks, normalised so that
1 is the best envelope and 0 an attack that breaks nothing); a global score per attack is the
mean over rows. A third-party attack is ranked after one `rb run`, apart from the built-ins
(below them, marked `third-party`): in-process code can read any file, the zoo's weights
included, so its numbers are not the suite's word; an attack flagged `implausible-efficiency`
(report/flags.py) says so in its `flags`."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from robustbench_lite.protocol.registry import ATTACK_GROUP, origin
from robustbench_lite.report.columns import TM_ORDER
from robustbench_lite.report.flags import attack_flags
from robustbench_lite.report.leaderboard import rows
from robustbench_lite.store import cell_record
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.files import atomic_write_text
from robustbench_lite.store.layout import GridLayout

#: Columns of attacks.csv, one row per (model row, threat model, attack cell).
COLUMNS = [
    "defense",
    "threat_model",
    "eps",
    "attack",
    "knowledge",
    "broken_by_any",
    "broken",
    "share",
    "median_queries",
    "optimality",
    "silent_success",
    "incomplete",
    "non_converging",
    "origin",
    "flags",
]


def _distances(cell: CellRecord) -> dict[int, float]:
    """A minimal attack's per-sample distance: 0 for a clean error (already misclassified, as
    AttackBench counts it), inf where it found nothing."""
    s = cell.samples
    return {
        i: 0.0 if not c else (math.inf if d is None else float(d))
        for i, c, d in zip(s.index, s.clean_correct, s.distance, strict=True)
    }


def _area(distances: np.ndarray, top: float) -> float:
    """The area under the robust accuracy curve r(e) = share of samples with distance > e, for
    e in [0, top] (distances clipped at top)."""
    clipped = np.minimum(distances, top)
    return float(np.mean(clipped))  # the integral of P(d > e) de over [0, top] is E[min(d, top)]


def optimality(mine: dict[int, float], best: dict[int, float]) -> float | None:
    """1 - (A_attack - A_best) / (A_worst - A_best): A the area under robust accuracy against
    distance up to the largest finite best distance, A_worst that of an attack that breaks
    nothing (the clean accuracy all along). None when the best envelope breaks nothing."""
    common = sorted(set(mine) & set(best))
    b = np.array([best[i] for i in common])
    finite = b[np.isfinite(b)]
    if len(common) == 0 or len(finite) == 0 or finite.max() <= 0:
        return None
    top = float(finite.max())
    a = np.array([mine[i] for i in common])
    clean = float(np.mean(b > 0))
    best_area, worst_area = _area(b, top), clean * top
    if worst_area - best_area <= 0:
        return None
    return 1.0 - (_area(a, top) - best_area) / (worst_area - best_area)


INDICATORS = ("silent_success", "incomplete", "non_converging")


def table(cell_dir: Path) -> pd.DataFrame:
    """The attack leaderboard of one grid, one row per (model row, threat model, attack cell)."""
    records = []
    origins: dict[str, str] = {}
    for label, _, group in rows(cell_record.load(cell_dir)):
        flagged = attack_flags(group)
        by_tm: dict[tuple[str, float, str], list[CellRecord]] = defaultdict(list)
        for cell in group:
            if not cell.no_eot:
                by_tm[cell.threat_model, float(cell.eps), cell.suffix].append(cell)
        for (tm, eps, _), cells in sorted(by_tm.items()):
            robust = [c.robust_by_index for c in cells]
            common = set(robust[0]).intersection(*robust[1:])
            clean = cells[0].samples
            correct = {i for i, ok in clean.by_index(clean.clean_correct).items() if ok}
            broken_any = {i for i in common & correct if not all(r[i] for r in robust)}
            minimal = [c for c in cells if c.minimal]
            best: dict[int, float] = {}
            for c in minimal:
                for i, d in _distances(c).items():
                    best[i] = min(best.get(i, math.inf), d)
            for cell, r in zip(cells, robust, strict=True):
                broken = sum(1 for i in broken_any if not r[i])
                records.append(
                    {
                        "defense": label,
                        "threat_model": tm,
                        "eps": eps,
                        "attack": cell.cell,
                        "knowledge": cell.knowledge,
                        "broken_by_any": len(broken_any),
                        "broken": broken,
                        "share": broken / len(broken_any) if broken_any else None,
                        "median_queries": cell.queries.median_success,
                        "optimality": optimality(_distances(cell), best) if cell.minimal else None,
                        **{k: cell.indicator_shares.get(k) for k in INDICATORS},
                        "origin": origins.setdefault(
                            cell.attack, origin(ATTACK_GROUP, cell.attack)
                        ),
                        "flags": ";".join(code for code, _ in flagged.get(cell.cell, [])),
                    }
                )
    return pd.DataFrame(records, columns=COLUMNS)


def scores(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per attack: its mean share of the worst case over the rows where some attack
    broke something, its mean optimality (minimal attacks), rows, and indicator means; sorted
    best first."""
    if frame.empty:
        return pd.DataFrame(columns=["attack", "threat_model", "rows", "share", "optimality"])
    grouped = frame.groupby(["attack", "threat_model", "origin"], dropna=False)
    out = grouped.agg(
        rows=("defense", "nunique"),
        share=("share", "mean"),
        optimality=("optimality", "mean"),
        median_queries=("median_queries", "median"),
        silent_success=("silent_success", "mean"),
        incomplete=("incomplete", "mean"),
        non_converging=("non_converging", "mean"),
        flags=("flags", lambda f: ";".join(sorted({c for v in f for c in str(v).split(";") if c}))),
    ).reset_index()
    out["_tm"] = [TM_ORDER.get(tm, len(TM_ORDER)) for tm in out["threat_model"]]
    out["_apart"] = [o != "built-in" for o in out["origin"]]
    out = out.sort_values(
        ["_tm", "threat_model", "_apart", "share", "attack"],
        ascending=[True, True, True, False, True],
    )
    return out.drop(columns=["_tm", "_apart"]).reset_index(drop=True)


#: How `scores` compares attacks that ran on different rows, said under every ranking.
SAME_ROWS = (
    "An attack's share is its mean over the rows it ran on, with that row count beside it "
    "(`rows`): attacks with other row counts were compared on other rows; `--wide` gives "
    "each row."
)


def save(cell_dir: Path) -> pd.DataFrame:
    """Write attacks.csv beside leaderboard.csv; returns the per-attack scores."""
    frame = table(cell_dir)
    layout = GridLayout(Path(cell_dir))
    text = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    atomic_write_text(layout.path / "attacks.csv", text)
    return scores(frame)
