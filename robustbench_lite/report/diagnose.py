"""`rb diagnose DEFENSE`: every red flag of a defense's rows, what it means and the numbers
behind it, and each cell's indicators of attack failure read from its query stream."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.spec import PROFILES
from robustbench_lite.report.flags import FLAGS, INDICATOR_FLAGS, certificate_evidence, evidence
from robustbench_lite.report.leaderboard import rows
from robustbench_lite.store import cell_record, certificates, diagnostics
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.layout import DIAGNOSTICS, GridLayout


def explain(cell_dir: Path, defense: str) -> str:
    """The report of one defense: per row (model), each flag with its evidence and meaning."""
    groups = [
        (label, key, g)
        for label, key, g in rows(cell_record.load(cell_dir))
        if g[0].defense == defense
    ]
    if not groups:
        raise RBError(f"no result files of defense {defense!r} in {cell_dir}")
    layout = GridLayout(Path(cell_dir))
    certified = certificates.columns(cell_dir)
    lines = []
    for label, key, group in groups:
        found = diagnostics.of_model(layout.diagnostics(defense), key)
        raised = evidence(group, found) + certificate_evidence(certified.get((defense, key), {}))
        lines.append(f"{label}: {len(group)} cells, {len(raised)} flag(s)")
        if found is None:
            lines.append("  (rerun a cell of this model to compute its diagnostics)")
        for code, detail in raised:
            lines.append(_wrap(f"{code}: {detail}", "  ", "      "))
            lines.append(_wrap(FLAGS.get(code, ""), "    ", "    "))
        lines += _indicator_lines(group)
    return "\n".join(lines) + "\n"


def profiles_with(results: Path, dataset: str, defense: str) -> list[str]:
    """The profiles of `dataset` under `results` whose grid holds result files of `defense`
    (quick, standard, paper first, in that order; any other folder after, by name)."""
    found = []
    for grid in sorted(p for p in Path(results, dataset).glob("*") if p.is_dir()):
        try:
            folder = GridLayout(grid).defense_dir(defense)
        except RBError:  # a defense name no result file can have
            return []
        if any(p.stem != DIAGNOSTICS for p in folder.glob("*.json")):
            found.append(grid.name)
    order = list(PROFILES)
    return sorted(found, key=lambda p: (order.index(p) if p in order else len(order), p))


def _wrap(text: str, first: str, rest: str) -> str:
    """`text` wrapped to the terminal's width (80 columns where there is none)."""
    width = max(40, shutil.get_terminal_size((80, 24)).columns - 1)
    return textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest)


def _indicator_lines(cells: list[CellRecord]) -> list[str]:
    """Per cell, the shares of its samples with each indicator of attack failure (Pintor et al.
    2022): silent success of all its samples, incomplete and non-converging of those that held;
    '-' where one does not apply. Flags above are raised from these past INDICATOR_FLAGS."""
    shown = []
    for cell in sorted(cells, key=lambda c: c.cell):
        shares = cell.indicator_shares
        if not shares:
            continue
        parts = [
            f"{kind.replace('_', ' ')} "
            + ("-" if shares.get(kind) is None else f"{shares[kind]:.0%}")
            for kind in INDICATOR_FLAGS
        ]
        shown.append(f"    {cell.cell}: {', '.join(parts)}")
    if not shown:
        return ["  indicators: none recorded (cells older than schema 2's indicators)"]
    return [
        "  indicators of attack failure per cell (share of samples):",
        *shown,
    ]
