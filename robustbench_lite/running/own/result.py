"""What `evaluate()` returns: the model's own row of the leaderboard, typed, with the whole board
one attribute away (`.leaderboard`).

A user evaluating their model wants its numbers, not a table to filter: the worst case per threat
model with its 95% interval, the clean accuracy, each attack's cell, the flags and the verdict.
The row is read through the board's typed columns (report/columns.py), never by slicing names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.errors import RBError
from robustbench_lite.report.columns import FLAGS, RANK, VERDICT, Column, Kind, Stat, headline_eps


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its 95% Wilson interval and the samples it covers."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] on {self.n}"


@dataclass(frozen=True)
class WorstCase:
    """A threat model's worst case: the samples no attack of it broke, at `eps`."""

    threat_model: str
    eps: float | None
    accuracy: Accuracy
    column: str  # its leaderboard column (`worst_linf`, `worst_linf@eps=0.1`)

    @property
    def title(self) -> str:
        """`worst Linf (eps 0.3)`, as the board's headers read."""
        return Column.parse(self.column).title(self.eps)


@dataclass(frozen=True)
class ModelResult:
    """A model's row: `name` is the row's label (the name given, or `<name>@<weights>` where
    that name already held other weights: `note` then says where the old row is)."""

    name: str
    clean: Accuracy
    worst: dict[str, WorstCase]  # `linf`, `linf@eps=0.1`, ...: the worst cases, board order
    cells: dict[str, float]  # attack cell (`pgd`, `square@budget=100`) -> robust accuracy
    flags: tuple[str, ...]
    rank: int | None
    verdict: str
    folder: Path  # where its cells and diagnostics lie
    note: str | None = None
    leaderboard: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def n(self) -> int:
        return self.clean.n

    def __repr__(self) -> str:
        width = max([len("clean accuracy"), *(len(w.title) for w in self.worst.values())])
        lines = [f"{self.name}  ({self.folder}/)"]
        lines.append(f"  {'clean accuracy':{width}}  {self.clean}")
        lines += [f"  {w.title:{width}}  {w.accuracy}" for w in self.worst.values()]
        cells = ", ".join(f"{c} {v:.3f}" for c, v in self.cells.items())
        lines.append(f"  cells: {cells or '-'}")
        standing = f"rank {self.rank}" if self.rank is not None else self.verdict
        lines.append(f"  flags: {', '.join(self.flags) or '-'}; verdict: {standing}")
        if self.note:
            lines.append(f"  note: {self.note}")
        rows = len(self.leaderboard)
        lines.append(f"  .leaderboard: the whole board ({rows} row{'s' if rows != 1 else ''})")
        return "\n".join(lines)


def model_result(
    board: pd.DataFrame, name: str, folder: Path, note: str | None = None
) -> ModelResult:
    """The row `name` of `board`, typed."""
    found = board[board["defense"] == name] if "defense" in board else board.iloc[0:0]
    if found.empty:
        raise RBError(f"the leaderboard has no row {name!r} (rows: {', '.join(board['defense'])})")
    row: dict[str, Any] = found.iloc[0].to_dict()
    eps = headline_eps(row)
    worst, cells = {}, {}
    for header, value in row.items():
        column = Column.parse(str(header))
        if not column.is_value or not _number(value):
            continue
        if column.kind is Kind.WORST:
            at = column.eps if column.eps is not None else eps.get(column.base)
            key = column.base + column.overrides
            worst[key] = WorstCase(column.base, at, _accuracy(row, column), column.name)
        elif column.kind is Kind.ATTACK:
            cells[column.name] = float(value)
    rank: Any = row.get(RANK)
    return ModelResult(
        name=name,
        clean=_accuracy(row, Column.parse("clean_acc")),
        worst=worst,
        cells=cells,
        flags=tuple(f for f in str(row.get(FLAGS) or "").split(";") if f and f != "nan"),
        rank=int(rank) if _number(rank) else None,
        verdict=str(row.get(VERDICT) or ""),
        folder=Path(folder),
        note=note,
        leaderboard=board,
    )


def _accuracy(row: dict[str, Any], column: Column) -> Accuracy:
    n: Any = row.get(column.of(Stat.N).name)
    return Accuracy(
        value=float(row[column.name]),
        low=float(row.get(column.of(Stat.LO).name, math.nan)),
        high=float(row.get(column.of(Stat.HI).name, math.nan)),
        n=int(n) if _number(n) else int(row["n"]),
    )


def _number(value: Any) -> bool:
    """A number that is not NaN (pandas' missing values included)."""
    try:
        return not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
