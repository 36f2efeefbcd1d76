"""How leaderboard values read as text, wherever they are shown (terminal, site): counts as
integers, accuracies with three decimals and their interval as `±`, missing cells blank."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robustbench_lite.report.columns import FLAGS, INTERVAL, Column, Stat

__all__ = ["FLAGS", "INTERVAL", "format_value", "has_interval", "interval_text", "is_missing"]


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA or an empty string: a cell that was not run."""
    if value is None or value is pd.NA or (isinstance(value, str) and not value.strip()):
        return True
    return isinstance(value, float) and math.isnan(value)


def format_value(column: str, value: Any) -> str:
    """Counts as integers, distances with three decimals, accuracies with three; '' if missing."""
    if is_missing(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if column == "n" or Column.parse(column).stat in (Stat.N, Stat.QUERIES):
        return f"{float(value):.0f}"
    if isinstance(value, (int, float)):
        return f"{float(value):.3f}"
    return str(value)


def interval_text(value: Any, lo: Any, hi: Any, *, plus_minus: str = "±") -> str:
    """`0.717±0.028`: the value and the larger side of its interval (which covers it); with
    `plus_minus=""`, `0.717 [0.689,0.745]`."""
    if is_missing(value):
        return ""
    if is_missing(lo) or is_missing(hi):
        return f"{value:.3f}"
    if not plus_minus:
        return f"{value:.3f} [{lo:.3f},{hi:.3f}]"
    return f"{value:.3f}{plus_minus}{max(hi - value, value - lo, 0.0):.3f}"


def has_interval(frame: pd.DataFrame, column: str) -> bool:
    """Whether the frame carries `<column>_lo` and `<column>_hi`."""
    parsed = Column.parse(column)
    return all(parsed.of(s).name in frame.columns for s in (Stat.LO, Stat.HI))
