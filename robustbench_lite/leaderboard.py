"""Result files -> one leaderboard row per defense -> CSV / Markdown.

Robust accuracies are read from the runner's per-sample outcomes; the worst case of a threat model
is the per-sample minimum over its attacks (a sample counts as robust only if every attack of that
threat model failed on it), evaluated on the samples all those attacks saw. Defenses that certify
get `certified_acc` columns from their certificate files (certified.py).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite import certified, diagnostics, flags
from robustbench_lite.cache import atomic_write_text, tampering
from robustbench_lite.errors import RBError
from robustbench_lite.identity import model_identity, short
from robustbench_lite.stats import wilson
from robustbench_lite.store import cell_problem

log = logging.getLogger(__name__)

REQUIRED = ("defense", "attack", "cell", "threat_model", "clean_acc", "robust_acc", "samples")
TM_ORDER = {"linf": 0, "l2": 1, "spatial": 2}
NO_EOT = "@no-eot"
#: `@budget=N` / `@<key>=<value>` in a cell name: run with other settings than the profile's.
_OVERRIDE = re.compile(r"@(?!eps=)[A-Za-z0-9_.-]+=")
OVERRIDE_NOTE = (
    "`@budget=N`, `@<key>=<value>`: a cell run with a query budget or hyper-parameter other than "
    "its profile's (`--budget`, `--set`); compare it only with cells run the same way."
)


def has_override(column: str) -> bool:
    """Whether a column's cell ran with a budget or hyper-parameters other than the profile's."""
    return bool(_OVERRIDE.search(column))


DIAGNOSTICS = "diagnostics"  # diagnostics.STEM: a model's checks beside its cells
#: Column suffixes of per-cell statistics: median queries, median distance, a capped cell's n,
#: and the 95% interval's bounds of an accuracy.
EXTRA = ("_queries", "_dist", "_n", "_lo", "_hi")


def read_cell(path: Path) -> dict[str, Any]:
    """One result file, verified: its hashes, and its aggregates against its own per-sample
    arrays; a corrupt, edited or self-contradicting one is an RBError naming it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RBError(f"corrupt result file {path} ({exc}); delete it and rerun") from None
    problem = tampering(record, REQUIRED) if isinstance(record, dict) else "not a JSON object"
    if problem is None:
        problem = cell_problem(record)
    if problem:
        raise RBError(f"refusing result file {path}: {problem}; delete it and rerun")
    return record


def is_cell(path: Path) -> bool:
    """Attack cells, not the certificates and model diagnostics that lie beside them."""
    return not certified.is_certificate(path) and path.stem != DIAGNOSTICS


def owned(path: Path) -> bool:
    """Whether a `.json` file beside the cells is one the store wrote (a sealed JSON object);
    anything else (a user's notes) is not read as a result, nor overwritten or removed."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "content_hash" in record


def load_cells(cell_dir: Path) -> list[dict[str, Any]]:
    """Every attack result file `<defense>/<cell>.json` under `cell_dir`, each verified;
    `_path` says where it was read from. Certificates (certified.py) are read apart; files the
    store did not write are skipped with a warning."""
    cells = []
    for path in sorted(Path(cell_dir).glob("*/*.json")):
        if not is_cell(path):
            continue
        if not owned(path):
            log.warning("%s is not a result file rb wrote: ignored", path)
            continue
        cells.append({**read_cell(path), "_path": str(path)})
    return cells


def _suffix(cell: dict[str, Any]) -> str:
    """The part of a cell name after the attack's name (e.g. '@eps=0.1'), '' by default."""
    return str(cell["cell"])[len(str(cell["attack"])) :]


def robust_by_index(cell: dict[str, Any]) -> dict[int, bool]:
    samples = cell["samples"]
    return dict(zip(samples["index"], samples["robust"], strict=True))


def worst_case(cells: list[dict[str, Any]]) -> tuple[float, int]:
    """Fraction of samples (seen by every cell) that no cell broke, and how many those are."""
    per_cell = [robust_by_index(c) for c in cells]
    common = set(per_cell[0]).intersection(*per_cell[1:])
    if not common:
        return math.nan, 0
    return sum(all(r[i] for r in per_cell) for i in common) / len(common), len(common)


def _interval(row: dict[str, Any], column: str, n: int) -> None:
    """`<column>_lo` and `<column>_hi`: the 95% Wilson interval of the accuracy in `column`."""
    value = row[column]
    lo, hi = (math.nan, math.nan) if value != value else wilson(round(value * n), n)
    row[f"{column}_lo"], row[f"{column}_hi"] = lo, hi


def worst_groups(cells: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`worst_<threat model>[suffix]` -> the cells of one row whose per-sample minimum it is."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        groups[f"worst_{cell['threat_model']}{_suffix(cell)}"].append(cell)
    return dict(groups)


def rows(cells: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(row label, model key, cells) per model: one model per row, sorted. A defense with cells of
    two models (other hyper-parameters or seed) gets one row per model, labelled by its key."""
    by_model: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        by_model[cell["defense"], model_identity(cell)].append(cell)
    models: dict[str, int] = defaultdict(int)
    for defense, _ in by_model:
        models[defense] += 1
    return [
        (defense if models[defense] == 1 else f"{defense}@{short(key)}", key, group)
        for (defense, key), group in sorted(by_model.items())
    ]


def _row(defense: str, cells: list[dict[str, Any]]) -> dict[str, Any]:
    cells = sorted(cells, key=lambda c: (TM_ORDER.get(c["threat_model"], 9), c["cell"]))
    widest = max(cells, key=lambda c: c["n"])
    row: dict[str, Any] = {"defense": defense, "n": widest["n"], "clean_acc": widest["clean_acc"]}
    _interval(row, "clean_acc", widest["n"])
    for cell in cells:
        row[cell["cell"]] = cell["robust_acc"]
        _interval(row, cell["cell"], cell["n"])
    for name, members in worst_groups(cells).items():
        row[name], seen = worst_case(members)
        _interval(row, name, seen)
        if seen != widest["n"]:  # capped attacks: the worst case covers only what all saw
            row[f"{name}_n"] = seen
    for cell in cells:
        if cell["n"] != widest["n"]:  # a capped cell (see Plugin.max_eval_samples) says so
            row[f"{cell['cell']}_n"] = cell["n"]
        if cell.get("knowledge") != "gradient":
            row[f"{cell['cell']}_queries"] = (cell.get("queries") or {}).get("median_success")
        if cell.get("minimal"):
            row[f"{cell['cell']}_dist"] = cell.get("median_distance")
    return row


def build(cell_dir: Path) -> pd.DataFrame:
    """The leaderboard of one dataset/profile folder: one row per defense, numbers as numbers."""
    cells = load_cells(cell_dir)
    column_tm = {cell["cell"]: cell["threat_model"] for cell in cells}
    certificates = certified.columns(cell_dir)
    table = []
    for label, key, group in rows(cells):
        row = _row(label, group)
        defense = group[0]["defense"]
        for column, (value, n) in certificates.get((defense, key), {}).items():
            row[column] = value
            _interval(row, column, n)
        found = diagnostics.load(diagnostics.path(cell_dir, defense))
        if found is None or model_identity(found) != key:
            found = None
        row["flags"] = ";".join(flags.row_flags(group, found))
        table.append(row)
    frame = pd.DataFrame(table)
    if frame.empty:
        return pd.DataFrame(columns=["defense", "n", "clean_acc"])
    first = ["defense", "n", "clean_acc"]
    robust = [c for c in frame.columns if c not in (*first, "flags") and not c.endswith(EXTRA)]

    def order(column: str) -> tuple[int, bool, str]:
        tm = column_tm.get(column) or column.removeprefix("worst_").split("@")[0]
        return TM_ORDER.get(tm, len(TM_ORDER)), column.startswith("worst_"), column

    robust.sort(key=order)
    extra = sorted(c for c in frame.columns if c.endswith(EXTRA))
    counts = {"n": "int64", **{c: "Int64" for c in extra if c.endswith("_n")}}
    return frame[[*first, *robust, *extra, "flags"]].astype(counts)


def save(frame: pd.DataFrame, cell_dir: Path) -> None:
    """Write leaderboard.csv and leaderboard.md beside the cells (atomically)."""
    atomic_write_text(Path(cell_dir) / "leaderboard.csv", to_csv(frame))
    atomic_write_text(Path(cell_dir) / "leaderboard.md", to_markdown(frame))


def to_csv(frame: pd.DataFrame) -> str:
    """CSV with numbers rounded to 6 decimals, so equal runs give byte-equal files."""
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; accuracies with three decimals and their 95% interval
    as `±` (the larger side of the Wilson interval, so the whole interval is covered), flags as
    codes with footnotes, empty cells blank."""
    intervals = {c for c in frame.columns if f"{c}_lo" in frame.columns}

    def fmt(record: dict[str, Any], column: str) -> str:
        value = record[column]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if not isinstance(value, float):
            return str(value)
        if column.endswith(("_queries", "_n")):
            return f"{value:.0f}"
        if column in intervals and not math.isnan(record[f"{column}_lo"]):
            half = max(value - record[f"{column}_lo"], record[f"{column}_hi"] - value)
            return f"{value:.3f} ±{half:.3f}"
        return f"{value:.3f}"

    columns = [c for c in frame.columns if not c.endswith(("_lo", "_hi"))]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if c in ("defense", "flags") else "---:" for c in columns) + "|",
    ]
    records = frame.to_dict(orient="records")
    for record in records:
        lines.append("| " + " | ".join(fmt(record, c) for c in columns) + " |")
    notes = []
    if intervals:
        notes.append("`±`: the 95% Wilson interval's larger side (sampling error over n).")
    if any(has_override(c) for c in columns):
        notes.append(OVERRIDE_NOTE)
    if any(NO_EOT in c for c in columns):
        notes.append(
            f"`{NO_EOT}`: a randomized defense attacked without expectation over transformation, "
            "shown only beside the EOT number it overstates; not a robustness claim."
        )
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
    cells = load_cells(cell_dir)
    seconds = sum(c.get("wall_time_s", 0.0) for c in cells)
    # Accuracies at the default eps only: sweeps go to the plot, query and distance medians to
    # leaderboard.md beside the cells.
    shown = [
        c
        for c in frame.columns
        if "@" not in c and (not c.endswith(EXTRA) or c.endswith(("_lo", "_hi")))
    ]
    block = (
        f"{README_START}\n{to_markdown(frame[shown])}\n"
        f"{len(cells)} cells from `{cell_dir.as_posix()}` (full table with query and distance "
        f"medians: `leaderboard.md` there); attack wall time {seconds / 60:.1f} min on the "
        f"machine that made them.{_capped(frame)}{_schemas(cells)}\n{README_END}"
    )
    head, rest = text.split(README_START, 1)
    atomic_write_text(Path(readme), head + block + rest.split(README_END, 1)[1])


def _schemas(cells: list[dict[str, Any]]) -> str:
    """A sentence naming the rows made under the newest result schema, when rows differ."""
    newest = max((int(c.get("schema", 1)) for c in cells), default=1)
    rows_at: dict[str, set[int]] = defaultdict(set)
    for label, _, group in rows(cells):
        rows_at[label] |= {int(c.get("schema", 1)) for c in group}
    current = sorted(label for label, found in rows_at.items() if found == {newest})
    if len(current) == len(rows_at):
        return ""
    listed = ", ".join(current) or "no row yet"
    return f" Rows under the current protocol (result schema {newest}): {listed}."


def _capped(frame: pd.DataFrame) -> str:
    """A sentence naming the cells evaluated on fewer samples than their row's n ('' if none)."""
    parts = []
    for column in (c for c in frame.columns if c.endswith("_n")):
        counts = sorted({int(v) for v in frame[column].dropna()})
        if counts:
            parts.append(f"{column.removesuffix('_n')} on {'/'.join(map(str, counts))}")
    if not parts:
        return ""
    return f" Cells on fewer test samples than their row's n: {', '.join(parts)}."
