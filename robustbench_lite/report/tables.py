"""The leaderboard as files: CSV (numbers as numbers, what `rb check` compares), Markdown
(accuracies with their 95% interval as `±`, flags and markers footnoted), and the block of the
README it keeps up to date."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.errors import RBError
from robustbench_lite.report import flags, ranking
from robustbench_lite.report.columns import FLAGS, RANK, VERDICT, Column, Kind, Stat, titles
from robustbench_lite.report.leaderboard import rows
from robustbench_lite.report.verdict import RULE, headline_columns
from robustbench_lite.store import cell_record
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.files import atomic_write_text
from robustbench_lite.store.layout import NO_EOT, GridLayout

#: `@budget=N` / `@<key>=<value>` in a cell name: run with other settings than the profile's.
_OVERRIDE = re.compile(r"@(?!eps=)[A-Za-z0-9_.-]+=")
OVERRIDE_NOTE = (
    "`@budget=N`, `@<key>=<value>`: a cell run with a query budget or hyper-parameter other than "
    "its profile's (`--budget`, `--set`); compare it only with cells run the same way."
)
NO_EOT_NOTE = (
    f"`{NO_EOT}`: a randomized defense attacked without expectation over transformation, "
    "shown only beside the EOT number it overstates; not a robustness claim."
)


def has_override(column: str) -> bool:
    """Whether a column's cell ran with a budget or hyper-parameters other than the profile's."""
    return bool(_OVERRIDE.search(column))


def save(frame: pd.DataFrame, cell_dir: Path) -> None:
    """Write leaderboard.csv and leaderboard.md beside the cells (atomically)."""
    layout = GridLayout(Path(cell_dir))
    atomic_write_text(layout.leaderboard_csv, to_csv(frame))
    atomic_write_text(layout.leaderboard_md, to_markdown(frame))


def save_grid(frame: pd.DataFrame, cell_dir: Path) -> None:
    """Every table a grid keeps beside its cells: the leaderboard (`save`) and attacks.csv
    (`ranking.save`); a run and `rb leaderboard --write` both write exactly these."""
    save(frame, cell_dir)
    ranking.save(cell_dir)


def to_csv(frame: pd.DataFrame) -> str:
    """CSV with numbers rounded to 6 decimals, so equal runs give byte-equal files."""
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; accuracies with three decimals and their 95% interval
    as `±` (the larger side of the Wilson interval, so the whole interval is covered), flags as
    codes with footnotes, empty cells blank."""
    parsed = {c: Column.parse(c) for c in frame.columns}
    lows = {c: p.of(Stat.LO).name for c, p in parsed.items()}
    highs = {c: p.of(Stat.HI).name for c, p in parsed.items()}
    intervals = {c for c in frame.columns if lows[c] in frame.columns}

    def fmt(record: dict[str, Any], column: str) -> str:
        value = record[column]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if not isinstance(value, float):
            return str(value)
        if parsed[column].stat in (Stat.QUERIES, Stat.N) or column == RANK:
            return f"{value:.0f}"
        if column in intervals and not math.isnan(record[lows[column]]):
            half = max(value - record[lows[column]], record[highs[column]] - value)
            return f"{value:.3f} ±{half:.3f}"
        return f"{value:.3f}"

    columns = [
        c
        for c in frame.columns
        if parsed[c].stat not in (Stat.LO, Stat.HI)
        and parsed[c].kind is not Kind.EPS
        and c != VERDICT
    ]
    columns = [c for c in columns if c == RANK] + [c for c in columns if c != RANK]
    records = frame.to_dict(orient="records")
    shown = titles(columns, records[0] if records else None)
    lines = [
        "| " + " | ".join(shown[c] for c in columns) + " |",
        "|" + "|".join("---" if c in ("defense", "flags") else "---:" for c in columns) + "|",
    ]
    for record in records:
        lines.append("| " + " | ".join(fmt(record, c) for c in columns) + " |")
    notes = []
    if RANK in columns:
        notes.append(RULE)
        unranked = [r for r in records if r.get(RANK) is None or r.get(RANK) != r.get(RANK)]
        notes.extend(f"Not ranked, {r['defense']}: {r.get(VERDICT)}." for r in unranked)
    if intervals:
        notes.append("`±`: the 95% Wilson interval's larger side (sampling error over n).")
    if any(has_override(c) for c in columns):
        notes.append(OVERRIDE_NOTE)
    if any(NO_EOT in c for c in columns):
        notes.append(NO_EOT_NOTE)
    raised = sorted({f for r in records for f in str(r.get("flags") or "").split(";") if f})
    notes.extend(f"`{code}`: {flags.FLAGS.get(code, code)}." for code in raised)
    if notes:
        lines.append("")
        lines.extend(f"{note}  " for note in notes)
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"


def update_readme(readme: Path, frame: pd.DataFrame, cell_dir: Path) -> None:
    """Put the Markdown leaderboard (and the grid's attack wall time) between the markers."""
    text = Path(readme).read_text()
    if README_START not in text or README_END not in text:
        raise RBError(f"{readme} has no {README_START} ... {README_END} block")
    cells = cell_record.load(cell_dir)
    seconds = sum(c.wall_time_s for c in cells)
    # The verdict only: rank, clean accuracy, the headline worst cases and certificates with
    # their intervals, flags (and the verdict's words, as notes); every attack cell, sweep and
    # median is in leaderboard.md beside the cells.
    keep = ["defense", "n", "clean_acc", *headline_columns(list(frame.columns)), FLAGS]
    keep += [c for c in frame.columns if Column.parse(c).kind is Kind.CERTIFIED]
    keep += [RANK, VERDICT, *(c for c in frame.columns if Column.parse(c).kind is Kind.EPS)]
    shown = [
        c
        for c in frame.columns
        if c in keep
        or (
            Column.parse(c).of(Stat.VALUE).name in keep
            and Column.parse(c).stat in (Stat.LO, Stat.HI)
        )
    ]
    block = (
        f"{README_START}\n{to_markdown(frame[shown])}\n"
        f"{len(cells)} cells from `{cell_dir.as_posix()}` (full table with query and distance "
        f"medians: `leaderboard.md` there); attack wall time {seconds / 60:.1f} min on the "
        f"machine that made them.{_capped(frame)}{_schemas(cells)}\n{README_END}"
    )
    head, rest = text.split(README_START, 1)
    atomic_write_text(Path(readme), head + block + rest.split(README_END, 1)[1])


def _schemas(cells: list[CellRecord]) -> str:
    """A sentence naming the rows made under the newest result schema, when rows differ."""
    newest = max((c.schema for c in cells), default=1)
    rows_at: dict[str, set[int]] = defaultdict(set)
    for label, _, group in rows(cells):
        rows_at[label] |= {c.schema for c in group}
    current = sorted(label for label, found in rows_at.items() if found == {newest})
    if len(current) == len(rows_at):
        return ""
    listed = ", ".join(current) or "no row yet"
    return f" Rows under the current protocol (result schema {newest}): {listed}."


def _capped(frame: pd.DataFrame) -> str:
    """A sentence naming the cells evaluated on fewer samples than their row's n ('' if none)."""
    parts = []
    for column in (c for c in frame.columns if Column.parse(c).stat is Stat.N):
        counts = sorted({int(v) for v in frame[column].dropna()})
        if counts:
            base = Column.parse(column).of(Stat.VALUE).name
            parts.append(f"{base} on {'/'.join(map(str, counts))}")
    if not parts:
        return ""
    return f" Cells on fewer test samples than their row's n: {', '.join(parts)}."
