"""A baseline `rb check` can trust: a leaderboard CSV with rows, a `defense` column and numbers
only, equal to the leaderboard built from the cell files beside it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from robustbench_lite.errors import RBError
from robustbench_lite.report.leaderboard import build
from robustbench_lite.store import cell_record
from robustbench_lite.store.cell_record import CellRecord


def read_baseline(baseline_csv: Path) -> tuple[pd.DataFrame, list[CellRecord]]:
    """The baseline CSV and its cell files, refused unless whole: rows, a `defense` column,
    numbers only, and equal to the leaderboard built from the cell files beside it."""
    if not baseline_csv.is_file():
        raise RBError(f"no baseline at {baseline_csv}; create one with `rb run` first")
    try:
        frame = pd.read_csv(baseline_csv, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise RBError(f"cannot read baseline {baseline_csv} ({exc})") from None
    if "defense" not in frame.columns:
        raise RBError(f"baseline {baseline_csv} has no `defense` column")
    if frame.empty:
        raise RBError(f"baseline {baseline_csv} has no rows: nothing to compare")
    for column in frame.columns.drop(["defense", "flags", "verdict"], errors="ignore"):
        values = pd.to_numeric(frame[column], errors="coerce")
        if (values.isna() & frame[column].notna()).any() or bool(
            (~values.dropna().map(math.isfinite)).any()
        ):
            raise RBError(f"baseline {baseline_csv}: column {column!r} holds a non-number")
    cells = cell_record.load(baseline_csv.parent)
    if not cells:
        raise RBError(f"no result files beside {baseline_csv}: nothing to rerun")
    rebuilt = build(baseline_csv.parent)
    problem = _mismatch(frame, rebuilt)
    if problem:
        raise RBError(f"baseline {baseline_csv} does not match its cell files: {problem}")
    return frame, cells


def _mismatch(csv: pd.DataFrame, rebuilt: pd.DataFrame) -> str | None:
    if list(csv.columns) != list(rebuilt.columns):
        gone = [c for c in rebuilt.columns if c not in csv.columns]
        extra = [c for c in csv.columns if c not in rebuilt.columns]
        return f"columns missing {gone}, unexpected {extra}"
    if list(csv["defense"].astype(str)) != list(rebuilt["defense"].astype(str)):
        return f"rows {list(csv['defense'])} vs {list(rebuilt['defense'])}"
    for text in ("flags", "verdict"):
        if text in csv.columns:
            written = csv[text].fillna("").astype(str).tolist()
            if written != rebuilt[text].fillna("").astype(str).tolist():
                return f"its {text} differ"
    for column in csv.columns.drop(["defense", "flags", "verdict"], errors="ignore"):
        a = pd.to_numeric(csv[column], errors="coerce").to_numpy(dtype=float)
        b = pd.to_numeric(rebuilt[column], errors="coerce").to_numpy(dtype=float)
        same = [(x != x and y != y) or abs(x - y) <= 1e-6 for x, y in zip(a, b, strict=True)]
        if not all(same):
            return f"column {column!r} differs"
    return None
