"""The attack leaderboard page of a grid (report/ranking.py): the attacks ranked per threat model
by their mean share of the per-sample worst case, with optimality and indicators of failure,
then every (model row, attack) line behind those means."""

from __future__ import annotations

from typing import Any

import pandas as pd

from robustbench_lite.report.columns import TM_ORDER
from robustbench_lite.report.format import is_missing
from robustbench_lite.report.ranking import SAME_ROWS
from robustbench_lite.report.site.grid import Grid
from robustbench_lite.report.site.html import esc, page, table, value_cell

SCORE_COLUMNS = [
    ("rows", "model rows the attack ran on"),
    ("share", "mean over rows of its share of the samples any attack of the threat model broke"),
    ("optimality", "AttackBench's local optimality (minimal attacks): 1 is the best envelope"),
    ("median_queries", "median over rows of its median queries to success"),
    ("silent_success", "mean share of samples where it queried an adversarial point, then lost"),
    ("incomplete", "mean share of held samples still improving over its last 10% of queries"),
    ("non_converging", "mean share of held samples it never moved off the clean margin"),
]
ROW_COLUMNS = [
    ("eps", ""),
    ("broken", "samples it broke of those any attack broke"),
    ("broken_by_any", "samples any attack of the threat model broke"),
    ("share", "broken / broken_by_any"),
    ("median_queries", "median queries of its successful samples"),
    ("optimality", "AttackBench's local optimality (minimal attacks)"),
    ("silent_success", "share of its samples"),
    ("incomplete", "share of the samples that held"),
    ("non_converging", "share of the samples that held"),
]


def _line(record: dict[str, Any], lead: list[str], columns: list[tuple[str, str]]) -> str:
    texts = "".join(
        f'<td class="left" data-col="{esc(k)}" data-value="{esc(record[k])}">{esc(record[k])}</td>'
        for k in lead
    )
    values = "".join(
        value_cell(k, None if is_missing(record.get(k)) else record[k]) for k, _ in columns
    )
    return f'<tr data-attack="{esc(record["attack"])}">{texts}{values}</tr>\n'


def attacks_page(grid: Grid, index_href: str) -> str:
    """attacks.html of one grid."""
    scores: pd.DataFrame = grid.scores
    score_lines = [
        _line(r, ["attack", "threat_model"], SCORE_COLUMNS)
        for r in scores.to_dict(orient="records")
    ]
    detail = grid.attacks.assign(_tm=[TM_ORDER.get(t, 9) for t in grid.attacks["threat_model"]])
    detail = detail.sort_values(
        ["_tm", "threat_model", "defense", "share"],
        ascending=[True, True, True, False],
        na_position="last",
    )
    detail_lines = [
        _line(r, ["defense", "threat_model", "attack"], ROW_COLUMNS)
        for r in detail.to_dict(orient="records")
    ]
    body = [
        f'<nav><a href="{esc(index_href)}#{esc(grid.anchor)}">← leaderboard</a> '
        f'<span class="muted">{esc(grid.label)}</span></nav>',
        f"<h1>Attack leaderboard · {esc(grid.label)}</h1>",
        '<p class="muted">Attacks judged like defenses. On each model row, the samples broken by '
        "any attack of a threat model form its per-sample worst case; an attack's share is how "
        "many of those it broke itself. Minimal attacks also get AttackBench's local optimality "
        "(Cinà et al. 2024): the area between their robust accuracy against distance and the "
        "per-sample best over all minimal attacks, normalised so that 1 is that best and 0 an "
        "attack that breaks nothing. The indicators of attack failure (Pintor et al. 2022) are "
        "read by the runner from every query the attack made. Ranked per threat model by mean "
        "share; the same numbers are in attacks.csv and <code>rb attacks</code>.</p>",
        "<h2>Ranking</h2>",
        table([("attack", ""), ("threat model", ""), *SCORE_COLUMNS], score_lines, css=["ranking"]),
        f'<p class="muted">{esc(SAME_ROWS)}</p>',
        "<h2>Per model row</h2>",
        table(
            [("defense", ""), ("threat model", ""), ("attack", ""), *ROW_COLUMNS],
            detail_lines,
            css=["per-row"],
        ),
    ]
    return page(f"attacks · {grid.label}", "\n".join(body))
