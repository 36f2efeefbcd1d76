"""The page of one defense of a grid. It opens with the verdict: its worst case per threat model
and the attack that broke the most there, its certified accuracy, its flags with the numbers
behind them; then the weights it was computed on, every cell, certificate and file's
provenance, and its plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robustbench_lite.report.columns import (
    RANK,
    TM_ORDER,
    VERDICT,
    Column,
    Stat,
    headline_eps,
    titles,
)
from robustbench_lite.report.flags import FLAGS as FLAG_MEANINGS
from robustbench_lite.report.format import interval_text, is_missing
from robustbench_lite.report.leaderboard import worst_groups
from robustbench_lite.report.site.cell_tables import (
    Provenance,
    cells_table,
    certificates_table,
    provenance_table,
)
from robustbench_lite.report.site.grid import Grid
from robustbench_lite.report.site.html import esc, key_value_table, page, table, value_cell
from robustbench_lite.store.cell_record import CellRecord, given


def defense_page(
    grid: Grid, defense: str, figures: Sequence[tuple[str, str]], index_href: str
) -> str:
    """One defense of one grid (`figures`: (relative image path, caption))."""
    cells = sorted(grid.row_cells(defense), key=lambda c: (TM_ORDER.get(c.threat_model, 9), c.cell))
    certs = grid.row_certificates(defense)
    row = grid.frame.set_index("defense").loc[defense].to_dict()
    first = cells[0]  # a row is a model's cells (leaderboard.rows)
    clean = interval_text(row["clean_acc"], row.get("clean_acc_lo"), row.get("clean_acc_hi"))
    body = [
        f'<nav><a href="{esc(index_href)}#{esc(grid.anchor)}">← leaderboard</a> '
        f'<span class="muted">{esc(grid.label)}</span></nav>',
        f"<h1>{esc(defense)}</h1>",
        f'<p class="summary">n = {int(row["n"])}, clean accuracy {esc(clean)}.</p>',
        _standing(row),
        _citation(grid, defense, cells, row),
        "<h2>Worst cases</h2>",
        _verdict_table(grid, cells, row),
        *_certified(grid, row),
        "<h2>Flags</h2>",
        _flag_list(grid.evidence.get(defense, [])),
        "<h2>Weights</h2>",
        _weights(grid, first),
        "<h2>Cells</h2>",
        cells_table(cells, row),
    ]
    if certs:
        body += ["<h2>Certificates</h2>", certificates_table(certs)]
    body += [
        "<h2>Defense hyper-parameters</h2>",
        key_value_table(first.config["defense"]["config"].items()),
        "<h2>Provenance</h2>",
        provenance_table(
            [Provenance.of_cell(c) for c in cells] + [Provenance.of_certificate(c) for c in certs]
        ),
    ]
    if figures:
        body.append("<h2>Plots</h2>")
        body += [
            f'<figure><img src="{esc(src)}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
            for src, caption in figures
        ]
    return page(f"{defense} · {grid.label}", "\n".join(body))


def _standing(row: dict[str, Any]) -> str:
    """The row's place in the verdict: its rank, or why it is not ranked."""
    rank: Any = row.get(RANK)
    if not is_missing(rank):
        return f'<p class="standing">Rank {int(rank)} of the complete evaluations.</p>'
    return f'<p class="standing muted">Not ranked: {esc(row.get(VERDICT) or "")}.</p>'


def _citation(grid: Grid, defense: str, cells: list[CellRecord], row: dict[str, Any]) -> str:
    """One line to cite: dataset, each headline worst case with its threat model and eps, n,
    the attacks, the suite's version and result schema, and the weights' SHA-256."""
    first = cells[0]
    worst = [
        f"{Column.parse(c).title(headline_eps(row).get(Column.parse(c).base))} {row[c]:.3f}"
        for c in grid.worst_columns
        if not is_missing(row.get(c))
    ]
    attacks = ", ".join(sorted({c.cell for c in cells}))
    version = first.versions.get("robustbench_lite", "?")
    text = (
        f"{defense} on {first.dataset} (n = {int(row['n'])}): "
        f"{'; '.join(worst) or 'no worst case'}; attacks: {attacks}; robustbench_lite "
        f"{version}, result schema {first.schema}; weights SHA-256 "
        f"{given(first.weights_sha256) or 'unrecorded'}."
    )
    return f'<p class="cite">Cite as: <code>{esc(text)}</code></p>'


def _verdict_table(grid: Grid, cells: list[CellRecord], row: dict[str, Any]) -> str:
    """Per worst-case column: its value and interval, the samples it covers, and the attack
    that broke the most there (its robust accuracy)."""
    groups = worst_groups(cells)
    lines = []
    for column in [c for c in grid.frame.columns if c in groups]:
        members = groups[column]
        strongest = min(members, key=lambda c: (c.robust_acc, c.cell))
        counted = row.get(column + "_n")
        n = row["n"] if is_missing(counted) else counted
        lines.append(
            f'<tr data-worst="{esc(column)}"><td>{esc(titles([column], row)[column])}</td>'
            + value_cell(column, row[column], css="worst")
            + f'<td class="left">{esc(_interval(row, column))}</td>'
            + value_cell("n", n)
            + f'<td class="left" data-col="strongest" data-value="{esc(strongest.cell)}">'
            f"{esc(strongest.cell)}</td>"
            + value_cell("robust_acc", strongest.robust_acc)
            + value_cell("attacks_n", len(members))
            + "</tr>\n"
        )
    headers = [
        ("worst case", "per-sample worst case over a threat model's attacks"),
        ("robust acc", "no attack of the threat model broke these samples"),
        ("95% interval", "Wilson interval"),
        ("n", "samples every attack of it saw"),
        ("broken most by", "the attack with the lowest robust accuracy"),
        ("its robust acc", ""),
        ("attacks", "cells of this threat model"),
    ]
    return table(headers, lines, sortable=False, css=["verdict"])


def _interval(row: dict[str, Any], column: str) -> str:
    parsed = Column.parse(column)
    lo, hi = row.get(parsed.of(Stat.LO).name), row.get(parsed.of(Stat.HI).name)
    return "" if is_missing(lo) or is_missing(hi) else f"[{lo:.3f}, {hi:.3f}]"


def _certified(grid: Grid, row: dict[str, Any]) -> list[str]:
    shown = [c for c in grid.certified_columns if not is_missing(row.get(c))]
    return [
        f'<p class="certified">{esc(c)}: <b>{row[c]:.3f}</b> {esc(_interval(row, c))}: verified, '
        "no attack inside that ball can go lower.</p>"
        for c in shown
    ]


def _flag_list(found: list[tuple[str, str]]) -> str:
    """Each flag with the numbers behind it and what it means."""
    if not found:
        return (
            '<p class="muted">No flag raised: no sign of masked gradients, attack failure '
            "or hidden randomness in these cells and diagnostics.</p>"
        )
    items = "".join(
        f'<li data-flag="{esc(code)}"><b class="flag">{esc(code)}</b> {esc(detail)}'
        f'<br><span class="muted">{esc(FLAG_MEANINGS.get(code, ""))}</span></li>'
        for code, detail in found
    )
    return f'<ul class="evidence">{items}</ul>'


def _weights(grid: Grid, first: CellRecord) -> str:
    """The model the cells ran on: its key, weights hash, and its zoo card if the suite ships
    it (so anyone can rerun these cells on the same weights)."""
    key = str(first.config.get("model_key", ""))
    sha = str(given(first.weights_sha256) or "")
    lines = [f"model key <code>{esc(key)}</code>, weights SHA-256 <code>{esc(sha)}</code>."]
    entry = grid.zoo.get(key)
    if entry is None:
        lines.append(
            "Not in the zoo: these weights were trained where the cells ran; a rerun elsewhere "
            "trains its own (other CPUs train other weights)."
        )
    elif entry.sha256 != sha:
        lines.append(
            f"The zoo ships other weights of this config (<code>{esc(entry.sha256[:12])}"
            "</code>): a rerun computes another model's numbers."
        )
    else:
        trained = "" if entry.train_time_s is None else f"{entry.train_time_s:.0f} s"
        lines.append(
            f"Shipped in the zoo as <code>{esc(entry.file)}</code>: {entry.parameters:,} "
            f"parameters, {esc(entry.architecture)}; trained in {esc(trained)} on "
            f"{entry.threads} thread(s), torch {esc(entry.torch)}, {esc(entry.cpu)}. "
            f"<code>rb check -d {esc(first.defense)}</code> reruns its cells on these weights."
        )
    return f'<p class="weights">{" ".join(lines)}</p>'
