"""Result files -> one leaderboard row per model -> a table (CSV here, Markdown in tables.py).

Robust accuracies are read from the runner's per-sample outcomes; the worst case of a threat model
is the per-sample minimum over its attacks (a sample counts as robust only if every attack of that
threat model failed on it), evaluated on the samples all those attacks saw. Defenses that certify
get `certified_acc` columns from the certificates the runner recomputed itself, and
`claimed_certified_acc` columns (and the `unverified-certificate` flag) from those it could not:
a claim is never shown as a certificate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.report import flags, verdict
from robustbench_lite.report.columns import RANK, TM_ORDER, VERDICT, Column, Stat, order
from robustbench_lite.stats import wilson
from robustbench_lite.store import cell_record, certificates, diagnostics
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.layout import GridLayout
from robustbench_lite.store.records import short


def worst_case(cells: list[CellRecord]) -> tuple[float, int]:
    """Fraction of samples (seen by every cell) that no cell broke, and how many those are."""
    per_cell = [c.robust_by_index for c in cells]
    common = set(per_cell[0]).intersection(*per_cell[1:])
    if not common:
        return math.nan, 0
    return sum(all(r[i] for r in per_cell) for i in common) / len(common), len(common)


def _interval(row: dict[str, Any], column: str, n: int) -> None:
    """`<column>_lo` and `<column>_hi`: the 95% Wilson interval of the accuracy in `column`."""
    value = row[column]
    lo, hi = (math.nan, math.nan) if value != value else wilson(round(value * n), n)
    parsed = Column.parse(column)
    row[parsed.of(Stat.LO).name], row[parsed.of(Stat.HI).name] = lo, hi


def worst_groups(cells: list[CellRecord]) -> dict[str, list[CellRecord]]:
    """`worst_<threat model>[suffix]` -> the cells of one row whose per-sample minimum it is."""
    groups: dict[str, list[CellRecord]] = defaultdict(list)
    for cell in cells:
        groups[Column.worst(cell.threat_model, cell.worst_suffix).name].append(cell)
    return dict(groups)


def rows(cells: list[CellRecord]) -> list[tuple[str, str, list[CellRecord]]]:
    """(row label, model key, cells) per model: one model per row, sorted. A defense with cells of
    two models (other hyper-parameters or seed) gets one row per model, labelled by its key."""
    by_model: dict[tuple[str, str], list[CellRecord]] = defaultdict(list)
    for cell in cells:
        by_model[cell.defense, cell.model_identity].append(cell)
    models: dict[str, int] = defaultdict(int)
    for defense, _ in by_model:
        models[defense] += 1
    return [
        (defense if models[defense] == 1 else f"{defense}@{short(key)}", key, group)
        for (defense, key), group in sorted(by_model.items())
    ]


def _row(defense: str, cells: list[CellRecord]) -> dict[str, Any]:
    cells = sorted(cells, key=lambda c: (TM_ORDER.get(c.threat_model, 9), c.cell))
    widest = max(cells, key=lambda c: c.n)
    row: dict[str, Any] = {"defense": defense, "n": widest.n, "clean_acc": widest.clean_acc}
    _interval(row, "clean_acc", widest.n)
    for cell in cells:
        row[cell.cell] = cell.robust_acc
        _interval(row, cell.cell, cell.n)
    for name, members in worst_groups(cells).items():
        row[name], seen = worst_case(members)
        _interval(row, name, seen)
        if seen != widest.n:  # capped attacks: the worst case covers only what all saw
            row[Column.parse(name).of(Stat.N).name] = seen
    for cell in cells:
        column = Column.parse(cell.cell)
        if cell.n != widest.n:  # a capped cell (see Plugin.max_eval_samples) says so
            row[column.of(Stat.N).name] = cell.n
        if not cell.white_box:
            row[column.of(Stat.QUERIES).name] = cell.queries.median_success
        if cell.minimal:
            row[column.of(Stat.DIST).name] = cell.median_distance
    return row


def build(cell_dir: Path) -> pd.DataFrame:
    """The leaderboard of one dataset/profile folder: one row per defense, numbers as numbers."""
    cells = cell_record.load(cell_dir)
    column_tm = {cell.cell: cell.threat_model for cell in cells}
    layout = GridLayout(Path(cell_dir))
    certified = certificates.columns(cell_dir)
    table = []
    grouped = rows(cells)
    for label, key, group in grouped:
        row = _row(label, group)
        defense = group[0].defense
        certs = certified.get((defense, key), {})
        for column, (value, n) in certs.items():
            row[column] = value
            _interval(row, column, n)
        found = diagnostics.of_model(layout.diagnostics(defense), key)
        claimed = [code for code, _ in flags.certificate_evidence(certs)]
        row["flags"] = ";".join(sorted({*flags.row_flags(group, found), *claimed}))
        table.append(row)
    frame = pd.DataFrame(table)
    if frame.empty:
        return pd.DataFrame(columns=["defense", "n", "clean_acc"])
    first = ["defense", "n", "clean_acc"]
    parsed = {c: Column.parse(c) for c in frame.columns}
    robust = [c for c, p in parsed.items() if p.is_accuracy and p.is_value]
    robust.sort(key=lambda c: order(c, column_tm))
    extra = sorted(c for c, p in parsed.items() if not p.is_value)
    standing = verdict.standings(
        frame.to_dict(orient="records"), {label: group for label, _, group in grouped}
    )
    frame[RANK] = [standing[str(d)].rank for d in frame["defense"]]
    frame[VERDICT] = [standing[str(d)].text for d in frame["defense"]]
    eps = default_eps(cells)
    eps_columns = []
    for tm in sorted(eps, key=lambda t: TM_ORDER.get(t, 9)):
        eps_columns.append(Column.eps_of(tm).name)
        frame[eps_columns[-1]] = eps[tm]
    tail = [RANK, VERDICT, *eps_columns]
    at = {str(d): i for i, d in enumerate(frame["defense"])}
    frame = frame.iloc[[at[label] for label in verdict.order(frame.to_dict("records"), standing)]]
    counts = {
        "n": "int64",
        RANK: "Int64",
        **{c: "Int64" for c in extra if parsed[c].stat is Stat.N},
    }
    columns = [*first, *robust, *extra, "flags", *tail]
    return frame[columns].reset_index(drop=True).astype(counts)


def default_eps(cells: list[CellRecord]) -> dict[str, float]:
    """Threat model -> the eps its cells without an eps override ran at (the headline's)."""
    found: dict[str, float] = {}
    for cell in cells:
        if Column.parse(cell.cell).eps is None:
            found.setdefault(cell.threat_model, float(cell.eps))
    return found
