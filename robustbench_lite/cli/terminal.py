"""A leaderboard fitted to the terminal: the columns that matter first, a note on the rest.

`render` keeps `defense`, `n`, `clean_acc`, the `worst_*` columns, flags and certified accuracy
first, then the attack cells, then per-cell sample counts, then query and distance medians, and
adds columns while they fit the width (shutil.get_terminal_size, which honours $COLUMNS). A column
that does not fit at full width may still fit with its header abbreviated. Interval columns
`<col>_lo` / `<col>_hi` are folded into `<col>` as `0.717±0.028` (the larger side, so the
interval is covered). What was left out is said in one line.
"""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
from dataclasses import dataclass

import pandas as pd

from robustbench_lite.report.columns import RANK, VERDICT, Column, Kind, Stat, titles
from robustbench_lite.report.format import (
    FLAGS,
    format_value,
    has_interval,
    interval_text,
    is_missing,
)
from robustbench_lite.report.tables import OVERRIDE_NOTE, has_override
from robustbench_lite.report.verdict import MIN_RANKED_N
from robustbench_lite.store.layout import NO_EOT
from robustbench_lite.text import printable

GAP = "  "
RULE_NOTE = (
    f"#/rank: complete evaluations on at least {MIN_RANKED_N} samples, by the lower end of the "
    "main worst case's interval; `rb leaderboard --csv` has every row's verdict."
)
WIDE_HINT = "`rb leaderboard --wide` or `--csv FILE` shows them"


class SafeFormatter(logging.Formatter):
    """A log line with its control characters (a plugin's name may hold ANSI escapes) stripped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


def terminal_width() -> int:
    """The terminal's width in characters ($COLUMNS first; 80 where nothing says)."""
    return shutil.get_terminal_size((80, 24)).columns


def shown_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's columns less the interval bounds (folded into their column) and an empty
    flags column."""
    out = []
    for column in frame.columns:
        parsed = Column.parse(column)
        if column == VERDICT or parsed.kind is Kind.EPS:  # said in a note, and in the headers
            continue
        if parsed.stat in (Stat.LO, Stat.HI) and has_interval(frame, parsed.of(Stat.VALUE).name):
            continue
        if column == FLAGS and all(is_missing(v) for v in frame[column]):
            continue
        out.append(column)
    return [c for c in out if c == RANK] + [c for c in out if c != RANK]


def priority(column: str) -> int:
    """0 for what a reader needs first, up to 4 for query and distance medians."""
    parsed = Column.parse(column)
    if parsed.kind in (Kind.FIXED, Kind.WORST, Kind.EPS):
        return 0 if parsed.stat is not Stat.N else 3
    if parsed.kind is Kind.CERTIFIED:
        return 1
    if parsed.stat is Stat.N:
        return 3
    if parsed.stat in (Stat.QUERIES, Stat.DIST):
        return 4
    return 2


@dataclass
class _Column:
    name: str
    cells: list[str]
    left: bool
    title: str = ""  # the header shown (a worst case with its eps); the name where empty

    @property
    def header(self) -> str:
        return self.title or self.name

    @property
    def width(self) -> int:
        return max([len(self.header), *map(len, self.cells)])

    @property
    def narrow(self) -> int:
        """The width with the header abbreviated to its values' width (at least 4)."""
        return max([4, *map(len, self.cells)])


def _cells(frame: pd.DataFrame, column: str, plus_minus: str) -> list[str]:
    if has_interval(frame, column):
        lo, hi = (Column.parse(column).of(s).name for s in (Stat.LO, Stat.HI))
        return [
            interval_text(v, low, high, plus_minus=plus_minus)
            for v, low, high in zip(frame[column], frame[lo], frame[hi], strict=True)
        ]
    return [format_value(column, v) for v in frame[column]]


def _abbreviate(name: str, width: int, ellipsis: str) -> str:
    return name if len(name) <= width else name[: width - len(ellipsis)] + ellipsis


def _encodable(text: str) -> bool:
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def render(
    frame: pd.DataFrame,
    width: int | None = None,
    *,
    hint: str = WIDE_HINT,
    unicode: bool | None = None,
) -> str:
    """The frame as an aligned text table no wider than `width` (default: the terminal's),
    followed by notes: columns left out, intervals, flags, `@no-eot`. `hint` says how to see
    every column."""
    width = max(20, width or terminal_width())
    unicode = _encodable("±…") if unicode is None else unicode
    plus_minus, ellipsis = ("±", "…") if unicode else ("+-", "~")
    names = shown_columns(frame)
    names = [c for c in names if c != FLAGS] + [c for c in names if c == FLAGS]  # flags last
    shown = titles(names, frame.iloc[0].to_dict() if len(frame) else None)
    candidates = [
        _Column(c, _cells(frame, c, plus_minus), c in ("defense", FLAGS), shown[c]) for c in names
    ]
    order = sorted(range(len(candidates)), key=lambda i: (priority(candidates[i].name), i))
    widths = _fit(candidates, order, width)
    if not widths:  # not even the defense column fits: cut it
        widths[0] = width
    kept = sorted(widths)
    lines = []
    header = [_abbreviate(candidates[i].header, widths[i], ellipsis) for i in kept]
    lines.append(_join(header, [widths[i] for i in kept], [candidates[i].left for i in kept]))
    lines.append(GAP.join("-" * widths[i] for i in kept))
    for r in range(len(frame)):
        values = [candidates[i].cells[r][: widths[i]] for i in kept]
        lines.append(_join(values, [widths[i] for i in kept], [candidates[i].left for i in kept]))
    notes = _notes(frame, candidates, widths, hint, plus_minus, width)
    body = [line.rstrip() for line in lines]
    for note in notes:
        body.extend(textwrap.wrap(note, width, break_on_hyphens=False, break_long_words=True))
    return "\n".join(body) + "\n"


def _fit(candidates: list[_Column], order: list[int], width: int) -> dict[int, int]:
    """Column index -> its width: by priority, each at full width, else abbreviated, else left
    out; a titled header (a worst case with its eps) starts abbreviated and gets its whole
    title back before any attack cell is placed, where room is left."""
    widths: dict[int, int] = {}
    used = -len(GAP)
    first = [i for i in order if priority(candidates[i].name) <= 1 and candidates[i].name != FLAGS]
    for group in (first, [i for i in order if i not in first]):
        for i in group:
            column = candidates[i]
            titled = column.title not in ("", column.name)
            for w in (column.narrow,) if titled else (column.width, column.narrow):
                if used + len(GAP) + min(w, column.width) <= width:
                    widths[i] = min(w, column.width)
                    used += len(GAP) + widths[i]
                    break
        for i in group:
            grow = candidates[i].width - widths.get(i, candidates[i].width)
            if i in widths and used + grow <= width:
                widths[i], used = candidates[i].width, used + grow
    return widths


def _join(values: list[str], widths: list[int], left: list[bool]) -> str:
    return GAP.join(
        v.ljust(w) if is_left else v.rjust(w)
        for v, w, is_left in zip(values, widths, left, strict=True)
    )


def _notes(
    frame: pd.DataFrame,
    candidates: list[_Column],
    widths: dict[int, int],
    hint: str,
    plus_minus: str,
    width: int,
) -> list[str]:
    notes = []
    kept = sorted(widths)
    names = [candidates[i].name for i in kept]
    dropped = [c.name for i, c in enumerate(candidates) if i not in widths and c.name != FLAGS]
    cut = [candidates[i].header for i in kept if widths[i] < len(candidates[i].header)]
    if dropped:
        kinds = [
            (sum(priority(c) == 2 for c in dropped), "attack cell"),
            (sum(Column.parse(c).stat is Stat.N for c in dropped), "sample count"),
            (
                sum(Column.parse(c).stat in (Stat.QUERIES, Stat.DIST) for c in dropped),
                "query/distance median",
            ),
        ]
        other = len(dropped) - sum(k for k, _ in kinds)
        said = [f"{k} {what}{'s' if k > 1 else ''}" for k, what in [*kinds, (other, "other")] if k]
        notes.append(
            f"{len(dropped)} of {len(candidates)} columns left out to fit {width} characters "
            f"({', '.join(said)}); {hint}."
        )
    if cut:
        notes.append(f"Abbreviated headers: {', '.join(cut)}.")
    if any(has_interval(frame, c) for c in names):
        notes.append(
            f"{plus_minus}: the larger side of the 95% Wilson interval; --wide shows both bounds."
        )
    if FLAGS in [c.name for c in candidates]:
        if FLAGS not in names:  # the column did not fit: the flags still get said
            flagged = [
                f"{d} {f}"
                for d, f in zip(frame["defense"], frame[FLAGS], strict=True)
                if not is_missing(f)
            ]
            notes.append(f"Flags: {', '.join(flagged)}.")
        if any(not is_missing(v) and str(v) for v in frame[FLAGS]):
            notes.append("Red flags: `rb diagnose DEFENSE` explains each with its numbers.")
    if VERDICT in frame.columns and RANK in frame.columns:
        unranked = [
            f"{d} ({v})"
            for d, v, r in zip(frame["defense"], frame[VERDICT], frame[RANK], strict=True)
            if is_missing(r)
        ]
        notes.append(RULE_NOTE)
        if unranked:
            notes.append(f"Not ranked: {'; '.join(unranked)}.")
    if any(has_override(c) for c in names):
        notes.append(OVERRIDE_NOTE)
    if any(NO_EOT in c for c in names):
        notes.append(
            f"{NO_EOT}: attacked without expectation over transformation, "
            "only to show the difference; not a robustness claim."
        )
    return notes
