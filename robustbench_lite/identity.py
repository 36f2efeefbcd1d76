"""Which model a result file was computed on: its model key (dataset, defense config, seed) and,
where recorded, the SHA-256 of its weights. Two retrainings of one config can differ in the last
bits (thread counts, machines), so results of different weights never share a leaderboard row."""

from __future__ import annotations

from typing import Any


def model_identity(record: dict[str, Any]) -> str:
    """`<model key>:<weights SHA-256>` of a cell, certificate or diagnostics record ('' parts in
    files that predate them)."""
    key = str((record.get("config") or {}).get("model_key", ""))
    return f"{key}:{record.get('weights_sha256') or ''}"


def short(identity: str) -> str:
    """A row label's suffix: the weights' hash where known, else the model key (8 characters)."""
    key, _, weights = identity.partition(":")
    return (weights or key)[:8]
