"""index.html: per grid, the ranked headline table (the verdict), then the per-attack grid, its
flags explained, and a link to the grid's attack leaderboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from robustbench_lite.report.columns import RANK, VERDICT, Column, Kind, Stat, titles
from robustbench_lite.report.flags import FLAGS as FLAG_MEANINGS
from robustbench_lite.report.format import FLAGS, has_interval, is_missing
from robustbench_lite.report.site.grid import Grid, describe
from robustbench_lite.report.site.html import esc, page, table, value_cell
from robustbench_lite.report.verdict import RULE

MEDIANS = (Stat.QUERIES, Stat.DIST)


def _main_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in (FLAGS, "defense") and Column.parse(c).is_value]


def _annotated(frame: pd.DataFrame, row: dict[str, Any], column: str) -> str:
    """A robust-accuracy cell: its value, its interval and its sample count if capped."""
    extra = ""
    parsed = Column.parse(column)
    if has_interval(frame, column) and not is_missing(row[column]):
        lo, hi = row[parsed.of(Stat.LO).name], row[parsed.of(Stat.HI).name]
        extra += (
            f'<span class="ci" data-col="{esc(parsed.of(Stat.LO).name)}" data-value="{esc(lo)}" '
            f'data-hi="{esc(hi)}" title="95% Wilson interval [{lo:.3f}, {hi:.3f}]">'
            f"±{max(hi - row[column], row[column] - lo, 0.0):.3f}</span>"
        )
    counted: Any = row.get(parsed.of(Stat.N).name)
    if not is_missing(counted) and column != "n":
        extra += (
            f'<span class="n" data-col="{esc(parsed.of(Stat.N).name)}" data-value="{int(counted)}" '
            f'title="on {int(counted)} test samples">n={int(counted)}</span>'
        )
    css = "worst" if parsed.kind is Kind.WORST else ""
    return value_cell(column, row[column], extra=extra, css=css)


def _flags(value: Any) -> str:
    meaning = FLAG_MEANINGS
    codes = [] if is_missing(value) else [c.strip() for c in str(value).split(";") if c.strip()]
    spans = "".join(
        f'<span class="flag" title="{esc(meaning.get(c, c))}">{esc(c)}</span>' for c in codes
    )
    return f'<td class="left flags" data-col="{FLAGS}" data-value="{esc("" if is_missing(value) else value)}">{spans}</td>'


def _link(grid: Grid, name: str) -> str:
    return (
        f'<td class="left" data-col="defense" data-value="{esc(name)}">'
        f'<a href="{esc(grid.pages[name])}">{esc(name)}</a></td>'
    )


def headline_table(grid: Grid) -> str:
    """The verdict: the ranked rows (complete evaluations on enough samples, report/verdict.py)
    by the lower end of the main threat model's worst case, with clean accuracy, every threat
    model's worst case at its eps, certified accuracy and flags; then every other row, greyed,
    with why it is not ranked."""
    frame = grid.frame
    columns = ["n", "clean_acc", *grid.worst_columns, *grid.certified_columns]
    shown = titles(columns, frame.iloc[0].to_dict() if len(frame) else None)
    ranked, others = [], []
    for row in frame.to_dict(orient="records"):
        name = str(row["defense"])
        rank = row.get(RANK)
        cells = "".join(_annotated(frame, row, c) for c in columns)
        if is_missing(rank):
            why = f'<td class="text why">{esc(row.get(VERDICT) or "")}</td>'
            others.append(
                f'<tr data-defense="{esc(name)}">{_link(grid, name)}{why}{cells}'
                f"{_flags(row.get(FLAGS))}</tr>\n"
            )
            continue
        ranked.append(
            f'<tr data-defense="{esc(name)}"><td data-col="rank" data-value="{int(rank)}">'
            f"{int(rank)}</td>{_link(grid, name)}{cells}{_flags(row.get(FLAGS))}</tr>\n"
        )
    labels = [(shown[c], describe(c)) for c in columns]
    out = [
        table(
            [("#", RULE), ("defense", describe("defense")), *labels, (FLAGS, describe(FLAGS))],
            ranked,
            css=["headline"],
        ),
        f'<p class="muted rule">{esc(RULE)}</p>',
    ]
    if others:
        headers = [
            ("defense", describe("defense")),
            ("why", "why the row is not ranked"),
            *labels,
            (FLAGS, describe(FLAGS)),
        ]
        out.append("<h3>Not ranked</h3>")
        out.append(table(headers, others, css=["unranked"]))
    return "\n".join(out)


def flag_notes(grid: Grid) -> str:
    """Every flag code raised in the grid, with what it means."""
    codes = sorted({c for v in grid.frame.get(FLAGS, []) for c in _codes(v)})
    if not codes:
        return '<p class="muted">No row raises a flag.</p>'
    items = "".join(
        f"<li><b>{esc(c)}</b>: {esc(FLAG_MEANINGS.get(c, 'see the README'))}</li>" for c in codes
    )
    return f'<ul class="flags">{items}</ul>'


def board_tables(grid: Grid) -> str:
    """The grid's per-attack leaderboard (robust accuracies) and its query/distance medians,
    sortable, in leaderboard.csv's row order."""
    frame = grid.frame
    main = _main_columns(frame)
    medians = [c for c in frame.columns if Column.parse(c).stat in MEDIANS]
    lines, median_lines = [], []
    for row in frame.to_dict(orient="records"):
        name = str(row["defense"])
        cells = "".join(_annotated(frame, row, c) for c in main) + _flags(row.get(FLAGS))
        lines.append(f'<tr data-defense="{esc(name)}">{_link(grid, name)}{cells}</tr>\n')
        values = "".join(value_cell(c, row[c]) for c in medians)
        median_lines.append(f'<tr data-defense="{esc(name)}">{_link(grid, name)}{values}</tr>\n')
    headers = [(c, describe(c)) for c in ["defense", *main, FLAGS]]
    out = [table(headers, lines, css=["board"])]
    if medians:
        out.append("<h3>Queries and distances</h3>")
        out.append(
            table([(c, describe(c)) for c in ["defense", *medians]], median_lines, css=["medians"])
        )
    return "\n".join(out)


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _codes(value: Any) -> list[str]:
    return [] if is_missing(value) else [c.strip() for c in str(value).split(";") if c.strip()]


LEGEND = [
    (
        "#",
        "rank: " + RULE,
    ),
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
        "verified accuracy at the Linf eps, from interval bounds the runner recomputed itself on "
        "its own instance of the model: no attack within that ball can go below it.",
    ),
    (
        "claimed_certified_acc",
        "a certified accuracy the runner could not recompute (the model is not made of the layers "
        "IBP covers): the defense's word, flagged unverified-certificate.",
    ),
    (
        "<cell>_queries",
        "median queries per sample of the successful samples (score- and label-based attacks).",
    ),
    ("<cell>_dist", "median distance found by a minimal attack (boundary, lf-boundary, fmn, fab)."),
    (
        "±",
        "the larger side of the 95% Wilson interval of an accuracy, where the results carry one.",
    ),
    ("flags", "codes marking a row whose numbers need a caveat; explained below its table."),
    (
        "attack leaderboard",
        "each grid's attacks judged: the share of the per-sample worst case each finds, its "
        "median queries, AttackBench's optimality for minimal attacks, and the indicators of "
        "attack failure the runner read from its queries.",
    ),
]


def index_page(grids: Sequence[Grid], source: str) -> str:
    """index.html: every grid's leaderboard, a table of contents and the legend."""
    nav = "".join(f'<a href="#{esc(g.anchor)}">{esc(g.label)}</a>' for g in grids)
    sections = []
    for grid in grids:
        seconds = sum(c.wall_time_s for c in grid.cells)
        main = grid.worst_columns[0] if grid.worst_columns else "clean_acc"
        first = grid.frame.iloc[0].to_dict() if len(grid.frame) else None
        main = f"the lower end of {titles([main], first)[main]}"
        sections.append(
            f'<section id="{esc(grid.anchor)}"><h2>{esc(grid.label)}</h2>'
            f'<p class="muted">From <code>{esc(grid.source)}</code>: '
            f"{_count(len(grid.cells), 'cell')}, "
            f"{_count(len(grid.certificates), 'certificate')}; "
            f"attack wall time {seconds / 60:.1f} min. Ranked by {esc(main)}; click a column "
            f'header to sort. <a class="attacks" href="{esc(grid.attack_page)}">Attack '
            "leaderboard</a></p>"
            f"{headline_table(grid)}{flag_notes(grid)}"
            f"<h3>Every attack</h3>{board_tables(grid)}</section>"
        )
    legend = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in LEGEND)
    body = (
        "<header><h1>robustbench_lite leaderboard</h1>"
        f'<p class="muted">Built from the result files in <code>{esc(source)}</code> alone.</p>'
        f"<nav>{nav}</nav></header>\n<main>{''.join(sections)}\n"
        f'<h2 id="legend">Legend</h2><dl class="legend">{legend}</dl></main>'
    )
    return page("robustbench_lite leaderboard", body)
