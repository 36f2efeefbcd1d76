"""Whether a stored record may be reused instead of recomputed: the same config hash, the same
weights, the same data (its full content hash), and a file that verifies."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.errors import RBError
from robustbench_lite.store.files import tampering
from robustbench_lite.store.records import owned, read_cell

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataKey:
    """The data a record must have been computed on to be reused: the full SHA-256 of its test
    split (`data_sha256`), and whether a record older than that field still counts (`pinned`:
    a registered dataset, its files verified by their own hashes; never a user's own data)."""

    sha256: str
    pinned: bool

    def matches(self, record: dict[str, Any]) -> bool:
        stored = record.get("data_sha256")
        return self.pinned if stored is None else stored == self.sha256


def stale(
    record: dict[str, Any], digest: str, weights: str | None, data: DataKey | None
) -> str | None:
    """Why a verified record may not be reused (another config, other weights when `weights`
    is known, other data when `data` is given), or None: the one rule every reuse applies."""
    if record.get("config_hash") != digest:
        return "made under another config"
    if weights is not None and record.get("weights_sha256") != weights:
        return "made on other weights"
    if data is not None and not data.matches(record):
        return "made on other data"
    return None


def is_current(
    path: Path, digest: str, weights: str | None = None, data: DataKey | None = None
) -> bool:
    """Whether `path` holds a record (cell, certificate or diagnostics) that verifies and is
    not `stale`."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(record, dict) and tampering(record) is None):
        return False
    return stale(record, digest, weights, data) is None


def cell_is_current(path: Path, digest: str, weights: str | None, data: DataKey) -> bool:
    """Whether the cell file at `path` may be reused: one rb wrote (else an RBError: it is not
    overwritten), that verifies against its own arrays and is not `stale`. A file that does not
    verify is recomputed, with a warning."""
    if not path.is_file():
        return False
    if not owned(path):
        raise RBError(
            f"{path} is not a result file rb wrote: move it away so the cell can be written"
        )
    try:
        stored = read_cell(path)
    except RBError as exc:
        log.warning("%s: recomputing it", exc)
        return False
    why = stale(stored, digest, weights, data)
    if why is not None and why != "made under another config":
        log.info("%s: %s; recomputing it", path, why)
    return why is None
