"""`rb diagnose DEFENSE`: every red flag of a defense's rows, what it means and the numbers
behind it."""

from __future__ import annotations

from pathlib import Path

from robustbench_lite.errors import RBError
from robustbench_lite.report.flags import FLAGS, evidence
from robustbench_lite.report.leaderboard import rows
from robustbench_lite.store import diagnostics
from robustbench_lite.store.layout import GridLayout
from robustbench_lite.store.records import load_cells


def explain(cell_dir: Path, defense: str) -> str:
    """The report of one defense: per row (model), each flag with its evidence and meaning."""
    groups = [
        (label, key, g)
        for label, key, g in rows(load_cells(cell_dir))
        if g[0]["defense"] == defense
    ]
    if not groups:
        raise RBError(f"no result files of defense {defense!r} in {cell_dir}")
    layout = GridLayout(Path(cell_dir))
    lines = []
    for label, key, group in groups:
        found = diagnostics.of_model(layout.diagnostics(defense), key)
        raised = evidence(group, found)
        lines.append(f"{label}: {len(group)} cells, {len(raised)} flag(s)")
        if found is None:
            lines.append("  (rerun a cell of this model to compute its diagnostics)")
        for code, detail in raised:
            lines.append(f"  {code}: {detail}")
            lines.append(f"    {FLAGS.get(code, '')}")
    return "\n".join(lines) + "\n"
