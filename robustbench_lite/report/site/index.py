"""The pages of the static site: the leaderboard index and one page per defense of a grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.report.flags import FLAGS as FLAG_MEANINGS
from robustbench_lite.report.format import FLAGS, INTERVAL, has_interval, is_missing
from robustbench_lite.report.leaderboard import EXTRA, rows
from robustbench_lite.report.site.html import esc, page, table, value_cell
from robustbench_lite.store.records import model_identity

MEDIANS = ("_queries", "_dist")


@dataclass
class Grid:
    """One dataset/profile folder of results and what the site shows of it."""

    label: str  # e.g. 'mnist-5k / standard' (with its results sub-root, if any)
    slug: str  # its folder in the site and its anchor on the index, e.g. 'mnist-5k/standard'
    frame: pd.DataFrame
    cells: list[dict[str, Any]]
    certificates: list[dict[str, Any]]
    pages: dict[str, str] = field(default_factory=dict)  # defense -> page path from the index

    def row_cells(self, label: str) -> list[dict[str, Any]]:
        """The cells of one leaderboard row (a row is one model: `defense@<id>` when a defense
        has cells of several)."""
        return next((g for lab, _, g in rows(self.cells) if lab == label), [])

    def row_certificates(self, label: str) -> list[dict[str, Any]]:
        """The certificates of the model of one row."""
        for lab, key, group in rows(self.cells):
            if lab == label:
                defense = group[0]["defense"]
                return [
                    c
                    for c in self.certificates
                    if c["defense"] == defense and model_identity(c) == key
                ]
        return []

    @property
    def anchor(self) -> str:
        return self.slug.replace("/", "-")


def describe(column: str) -> str:
    """The tooltip of a leaderboard column."""
    if column == "defense":
        return "the defense; its page has every cell's details"
    if column == "n":
        return "test samples of the row (its widest cell)"
    if column == "clean_acc":
        return "accuracy on the n clean test samples"
    if column.startswith("worst_"):
        return "per-sample worst case over the attacks of this threat model"
    if column.startswith("certified_acc"):
        return "verified (certified) accuracy at the Linf eps"
    if column == FLAGS:
        return "flags of this row (see the notes below the table)"
    if column.endswith("_queries"):
        return "median queries per sample of the successful samples"
    if column.endswith("_dist"):
        return "median distance found by the minimal attack"
    return "robust accuracy under this attack (verified by the runner)"


def _main_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c != FLAGS and not c.endswith((*EXTRA, *INTERVAL)) and c != "defense"
    ]


def _annotated(frame: pd.DataFrame, row: dict[str, Any], column: str) -> str:
    """A robust-accuracy cell: its value, its interval and its sample count if capped."""
    extra = ""
    if has_interval(frame, column) and not is_missing(row[column]):
        lo, hi = row[column + "_lo"], row[column + "_hi"]
        extra += (
            f'<span class="ci" data-col="{esc(column)}_lo" data-value="{esc(lo)}" '
            f'data-hi="{esc(hi)}" title="95% Wilson interval [{lo:.3f}, {hi:.3f}]">'
            f"±{max(hi - row[column], row[column] - lo, 0.0):.3f}</span>"
        )
    counted = row.get(column + "_n")
    if not is_missing(counted) and column != "n":
        extra += (
            f'<span class="n" data-col="{esc(column)}_n" data-value="{int(counted)}" '
            f'title="on {int(counted)} test samples">n={int(counted)}</span>'
        )
    css = "worst" if column.startswith("worst_") else ""
    return value_cell(column, row[column], extra=extra, css=css)


def _flags(value: Any) -> str:
    meaning = FLAG_MEANINGS
    codes = [] if is_missing(value) else [c.strip() for c in str(value).split(";") if c.strip()]
    spans = "".join(
        f'<span class="flag" title="{esc(meaning.get(c, c))}">{esc(c)}</span>' for c in codes
    )
    return f'<td data-col="{FLAGS}" data-value="{esc("" if is_missing(value) else value)}">{spans}</td>'


def board_tables(grid: Grid) -> str:
    """The grid's leaderboard (robust accuracies) and its query/distance medians, sortable."""
    frame = grid.frame
    main = _main_columns(frame)
    flagged = FLAGS in frame.columns and not all(is_missing(v) for v in frame[FLAGS])
    medians = [c for c in frame.columns if c.endswith(MEDIANS)]
    rows, median_rows = [], []
    for row in frame.to_dict(orient="records"):
        name = str(row["defense"])
        link = f'<td data-col="defense" data-value="{esc(name)}"><a href="{esc(grid.pages[name])}">{esc(name)}</a></td>'
        cells = [_annotated(frame, row, c) for c in main]
        if flagged:
            cells.append(_flags(row.get(FLAGS)))
        rows.append(f'<tr data-defense="{esc(name)}">{link}{"".join(cells)}</tr>\n')
        values = "".join(value_cell(c, row[c]) for c in medians)
        median_rows.append(f'<tr data-defense="{esc(name)}">{link}{values}</tr>\n')
    headers = [(c, describe(c)) for c in ["defense", *main, *([FLAGS] if flagged else [])]]
    out = [table(headers, rows, css=["board"])]
    if flagged:
        codes = sorted({c for v in frame[FLAGS] for c in _codes(v)})
        meaning = FLAG_MEANINGS
        items = "".join(
            f"<li><b>{esc(c)}</b>: {esc(meaning.get(c, 'see the README'))}</li>" for c in codes
        )
        out.append(f'<ul class="flags">{items}</ul>')
    if medians:
        out.append("<h3>Queries and distances</h3>")
        out.append(
            table([(c, describe(c)) for c in ["defense", *medians]], median_rows, css=["medians"])
        )
    return "\n".join(out)


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _codes(value: Any) -> list[str]:
    return [] if is_missing(value) else [c.strip() for c in str(value).split(";") if c.strip()]


LEGEND = [
    ("n", "test samples of the row; a cell evaluated on fewer shows n=… beside its value."),
    ("clean_acc", "accuracy on the clean test samples."),
    (
        "attack columns",
        "robust accuracy: the fraction of the n samples classified correctly that the attack "
        "did not break. The runner clips and re-predicts every adversarial example itself and "
        "counts every query. `@eps=e`: at a budget other than the threat model's default.",
    ),
    (
        "worst_<tm>",
        "per-sample worst case over the attacks of threat model <tm> (linf, l2, spatial): a "
        "sample counts as robust only if every attack failed on it, on the samples all saw.",
    ),
    (
        "EOT",
        "a randomized defense is attacked through expectation over transformation: each query "
        "averages several random draws and is charged for each. `@no-eot` cells skip it, only "
        "to show the difference; they are not a robustness claim.",
    ),
    (
        "certified_acc",
        "verified accuracy from the defense's certificate (IBP) at the Linf eps: no attack "
        "within that ball can go below it.",
    ),
    (
        "<cell>_queries",
        "median queries per sample of the successful samples (score- and label-based attacks).",
    ),
    ("<cell>_dist", "median distance found by a minimal attack (boundary, lf-boundary)."),
    (
        "±",
        "the larger side of the 95% Wilson interval of an accuracy, where the results carry one.",
    ),
    ("flags", "codes marking a row whose numbers need a caveat; explained below its table."),
]


def index_page(grids: Sequence[Grid], source: str) -> str:
    """index.html: every grid's leaderboard, a table of contents and the legend."""
    nav = "".join(f'<a href="#{esc(g.anchor)}">{esc(g.label)}</a>' for g in grids)
    sections = []
    for grid in grids:
        seconds = sum(c.get("wall_time_s", 0.0) for c in grid.cells)
        sections.append(
            f'<section id="{esc(grid.anchor)}"><h2>{esc(grid.label)}</h2>'
            f'<p class="muted">{_count(len(grid.cells), "cell")}, '
            f"{_count(len(grid.certificates), 'certificate')}; "
            f"attack wall time {seconds / 60:.1f} min. Click a column header to sort.</p>"
            f"{board_tables(grid)}</section>"
        )
    legend = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in LEGEND)
    body = (
        "<header><h1>robustbench_lite leaderboard</h1>"
        f'<p class="muted">Built from the result files in <code>{esc(source)}</code> alone.</p>'
        f"<nav>{nav}</nav></header>\n<main>{''.join(sections)}\n"
        f'<h2 id="legend">Legend</h2><dl class="legend">{legend}</dl></main>'
    )
    return page("robustbench_lite leaderboard", body)


def relative(target: Path, start: Path) -> str:
    """A POSIX relative link from the folder `start` to `target`."""
    return Path(os.path.relpath(target, start)).as_posix()
