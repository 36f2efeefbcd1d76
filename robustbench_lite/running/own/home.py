"""Where a user's model lives in a grid: a name keeps its history.

A user's model is a row named by the user (`--name`, `name=`), and its cells, diagnostics and
shards lie in `<grid>/<name>/`. Retraining and evaluating again under the same name is the daily
loop; writing the new weights' cells into that folder would overwrite the old model's (and leave
its row without diagnostics). So the folder, and with it the row, is chosen by weights:

- `<name>/` while it holds no record of other weights (a first run, or a rerun that resumes);
- else `<name>@<first 8 hex of the weights' SHA-256>/` (longer where even that is taken), the
  label `report/leaderboard.py` gives a model split off a row, so both rows stay on the board.

Records are never moved or rewritten here: the old row stays exactly where and what it was.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robustbench_lite.running.own.model import UserModel
from robustbench_lite.store.layout import GridLayout

log = logging.getLogger(__name__)

#: Lengths of the weights' hash tried as the folder's suffix, shortest first.
SUFFIXES = (8, 16, 64)


def weights_in(folder: Path) -> set[str]:
    """The weights' SHA-256 of every record under `folder` (cells, diagnostics, shards); records
    that do not say (or do not parse) are none of them."""
    found: set[str] = set()
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        weights = record.get("weights_sha256") if isinstance(record, dict) else None
        if isinstance(weights, str) and weights:
            found.add(weights)
    return found


def home(layout: GridLayout, name: str, weights: str) -> tuple[str, str | None]:
    """(row and folder name, the note for the user or None) of the model `name` with weights
    `weights` in `layout`'s grid: `name` while its folder holds only these weights' records."""
    if not weights_in(layout.path / name) - {weights}:
        return name, None
    for size in SUFFIXES:
        label = f"{name}@{weights[:size]}"
        if not weights_in(layout.path / label) - {weights}:
            break
    old = layout.path / name
    note = (
        f"the name {name} already holds other weights (row {name}, {old}/, kept as it is); "
        f"these weights are row {label}, in {layout.path / label}/"
    )
    return label, note


def settle(model: UserModel, layout: GridLayout) -> None:
    """Give a user's model its row and folder in `layout` (before any work), saying once, in one
    line, where its name held other weights."""
    label, note = home(layout, model.requested, model.config()["weights_sha256"])
    if note is not None and model.name != label:
        log.warning("%s", note)
    model.name = label  # type: ignore[misc]  # an instance's row, not a registered class's
    model.home_note = note
