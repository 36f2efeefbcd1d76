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


def is_current(
    path: Path, digest: str, weights: str | None = None, data: DataKey | None = None
) -> bool:
    """Whether `path` holds a record (cell, certificate or diagnostics) that verifies, computed
    under the config with hash `digest` and, when `weights` is known, on those weights, and when
    `data` is given, on those data."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(record, dict) and tampering(record) is None):
        return False
    if data is not None and not data.matches(record):
        return False
    return record["config_hash"] == digest and weights in (None, record.get("weights_sha256"))


def cell_is_current(path: Path, digest: str, weights: str | None, data: DataKey) -> bool:
    """Whether the cell file at `path` may be reused: one rb wrote (else an RBError: it is not
    overwritten), that verifies, made under config hash `digest`, on these weights (when known)
    and on these data. A file that does not verify is recomputed, with a warning."""
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
    if stored.get("config_hash") != digest:
        return False
    if weights is not None and stored.get("weights_sha256") != weights:
        log.info("%s: made on other weights; recomputing it", path)
        return False
    if not data.matches(stored):
        log.info("%s: made on other data; recomputing it", path)
        return False
    return True
