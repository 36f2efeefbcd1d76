"""Whether a stored record may be reused instead of recomputed: the same config hash, the same
weights, the same data (its full content hash), and a file that verifies."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.errors import RBError
from robustbench_lite.store import cell_record
from robustbench_lite.store.cell_record import given
from robustbench_lite.store.files import tampering
from robustbench_lite.store.records import owned
from robustbench_lite.store.retracted import retracted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataKey:
    """The data a record must have been computed on to be reused: the full SHA-256 of its test
    split (`data_sha256`), and whether a record older than that field still counts (`pinned`:
    a registered dataset, its files verified by their own hashes; never a user's own data)."""

    sha256: str
    pinned: bool

    def matches(self, stored: str | None) -> bool:
        """Whether a record's `data_sha256` (None where it has none) is of this data."""
        return self.pinned if stored is None else stored == self.sha256


@dataclass(frozen=True)
class Made:
    """What a stored record says it was made from: config hash, weights and data hashes, and
    its own content hash (which names a retracted record: store/retracted.py)."""

    config_hash: str | None
    weights_sha256: str | None
    data_sha256: str | None
    content_hash: str | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Made:
        """Of a certificate or diagnostics record (JSON)."""
        get = record.get
        return cls(
            get("config_hash"), get("weights_sha256"), get("data_sha256"), get("content_hash")
        )


def stale(made: Made, digest: str, weights: str | None, data: DataKey | None) -> str | None:
    """Why a verified record may not be reused (another config, other weights when `weights`
    is known, other data when `data` is given, or retracted), or None: the one rule every reuse
    applies."""
    if made.config_hash != digest:
        return "made under another config"
    if weights is not None and made.weights_sha256 != weights:
        return "made on other weights"
    if data is not None and not data.matches(made.data_sha256):
        return "made on other data"
    return retracted(made.content_hash)


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
    return stale(Made.of(record), digest, weights, data) is None


def cell_staleness(path: Path, digest: str, weights: str | None, data: DataKey) -> str | None:
    """Why the cell at `path` must be computed (`new`: no file; `does not verify`: a file that
    does not match its own arrays, recomputed with a warning; else `stale`'s reason), or None
    when it may be reused. A file rb did not write is an RBError: it is never overwritten."""
    if not path.is_file():
        return "new"
    if not owned(path):
        raise RBError(
            f"{path} is not a result file rb wrote: move it away so the cell can be written"
        )
    try:
        stored = cell_record.read(path)
    except RBError as exc:
        log.warning("%s: recomputing it", exc)
        return "does not verify"
    made = Made(
        stored.config_hash,
        given(stored.weights_sha256),
        given(stored.data_sha256),
        given(stored.content_hash),
    )
    why = stale(made, digest, weights, data)
    if why is not None and why != "made under another config":
        log.info("%s: %s; recomputing it", path, why)
    return why
