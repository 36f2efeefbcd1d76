"""What `rb run` shows: the rows of its defenses, the columns of its cells, and which cells were
reused from earlier result files rather than computed now.

The runner records, after `Runner.run`, the cell (and certificate) files it took from earlier runs
(`reused`) and those it wrote (`computed`); a runner without them is read through the cell names
it would write.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.cli.terminal import terminal_width
from robustbench_lite.protocol.registry import attack_class, defense_class, instantiate
from robustbench_lite.report.columns import (
    EXTRA,
    FLAGS,
    INTERVAL,
    RANK,
    VERDICT,
    Column,
    Kind,
)
from robustbench_lite.running.grid.jobs import RunLog
from robustbench_lite.store import cell_record, certificates
from robustbench_lite.store.layout import CERTIFICATE, is_certificate

#: Columns derived from a cell's or a worst case's column, shown with it where present.
DERIVED = (*INTERVAL, *EXTRA)


def files(runner: Any) -> tuple[list[Path], list[Path]]:
    """The (reused, computed) result files of a finished run ([] where the runner says nothing)."""
    return list(getattr(runner, "reused", [])), list(getattr(runner, "computed", []))


def columns(runner: Any, attacks: Sequence[str], defenses: Sequence[str]) -> list[str]:
    """The leaderboard columns of a run's cells: each cell, the worst case of its threat model,
    and the certified accuracy of a certificate it made or reused."""
    reused, computed = files(runner)
    out: list[str] = []
    if reused or computed:
        for path in reused + computed:
            if is_certificate(path):  # verified or claimed: whichever the board shows
                column = path.stem.replace(CERTIFICATE, certificates.COLUMN, 1)
                out += [column, certificates.CLAIMED + column.removeprefix(certificates.COLUMN)]
                continue
            cell = cell_record.read(path)
            out += [cell.cell, Column.worst(cell.threat_model, cell.worst_suffix).name]
        return out
    for a in attacks:  # a runner that does not list its files: the cells it would write
        attack = instantiate(attack_class(a), runner.profile, runner.settings.get(a))
        for d in defenses:
            defense = instantiate(defense_class(d), runner.profile, runner.settings.get(d))
            name = runner.plan.cell_name(attack, defense)
            out += [name, Column.worst(attack.threat_model, name[len(attack.name) :]).name]
    return out


def view(board: pd.DataFrame, defenses: Iterable[str], cells: Iterable[str]) -> pd.DataFrame:
    """The board's rows of `defenses` and columns of `cells` (with n, clean accuracy, flags and
    the per-column intervals, sample counts and medians), in the board's order."""
    wanted = {
        "defense",
        "n",
        "clean_acc",
        FLAGS,
        RANK,
        VERDICT,
        *(f"clean_acc{s}" for s in INTERVAL),
    }
    wanted |= {c for c in board.columns if Column.parse(c).kind is Kind.EPS}
    for name in cells:
        wanted |= {name, *(name + s for s in DERIVED)}
    frame = board[board["defense"].isin(list(defenses))]
    kept = [
        c
        for c in board.columns
        if c in wanted and (c in (RANK, VERDICT) or not frame[c].isna().all())
    ]
    return frame[[c for c in board.columns if c in kept or c == "defense"]].reset_index(drop=True)


#: Beyond this many computed cells, the report counts them per defense instead of naming them.
LIST_AT_MOST = 12


def report(runners: Sequence[Any], cell_dir: Path, width: int | None = None) -> str:
    """Which cells were reused from existing result files (and where those are) and which were
    computed now; '' if the runners do not say."""
    reused: dict[Path, list[str]] = defaultdict(list)
    computed: list[str] = []
    said = False
    for runner in runners:
        said = said or hasattr(runner, "reused")
        old, new = files(runner)
        for path in old:
            reused[path.parent].append(path.name)
        computed += [f"{p.parent.name}/{p.stem}" for p in new]
    if not said:
        return ""
    width = width or terminal_width()
    count = sum(len(v) for v in reused.values())
    if len(computed) > LIST_AT_MOST:  # a grid: per defense, so the report fits a screen
        per: dict[str, int] = defaultdict(int)
        for name in computed:
            per[name.split("/")[0]] += 1
        listed = ", ".join(f"{d}: {k}" for d, k in sorted(per.items()))
    else:
        listed = ", ".join(computed)
    lines = [
        f"Computed now: {len(computed)} file{'s' if len(computed) != 1 else ''}"
        + (f" ({listed})." if computed else ".")
    ]
    if count:
        lines.append(
            f"Reused {count} file{'s' if count != 1 else ''} from earlier runs (same config "
            f"hash; delete a file to recompute it), under {cell_dir}:"
        )
        lines += [
            f"  {folder.relative_to(cell_dir) if folder.is_relative_to(cell_dir) else folder}/: "
            f"{', '.join(sorted(names))}"
            for folder, names in sorted(reused.items())
        ]
    else:
        lines.append("Reused nothing from earlier result files.")
    wrapped = []
    for line in lines:
        indent = "    " if line.startswith("  ") else ""
        wrapped += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False)
    return "\n".join(wrapped) + "\n"


def preview(logs: Sequence[RunLog], cell_dir: Path) -> str:
    """`rb run --dry-run`: the cells a run would compute, each with why (new, or a file it may
    not reuse), under `cell_dir`, then how many it would reuse; nothing was trained or run."""
    pending = [(path, why) for run_log in logs for path, why in run_log.pending]
    reused = sum(len(run_log.reused) for run_log in logs)
    lines = [
        f"Would compute {len(pending)} cell{'s' if len(pending) != 1 else ''} under {cell_dir} "
        f"and reuse {reused} (dry run: nothing trained or attacked):"
    ]
    for path, why in pending:
        shown = path.relative_to(cell_dir) if path.is_relative_to(cell_dir) else path
        lines.append(f"  {shown.with_suffix('')!s:<32} {why}")
    return "\n".join(lines) + "\n"
