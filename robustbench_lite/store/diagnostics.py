"""A model's diagnostics record (protocol/checks.py measures, this stores): keyed by its model
and settings, recomputed when any of them changes, and read back only when its flags follow from
its own numbers; a missing or inconsistent one is the leaderboard's `no-diagnostics` flag.

The runner writes the record as a dict (jobs.DiagnosticsJob); it is read back as a typed
`DiagnosticsRecord`, so the report reads attributes, never string keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.protocol.checks import SAMPLES, flags_of
from robustbench_lite.store.fields import of_type, optional
from robustbench_lite.store.files import tampering
from robustbench_lite.store.layout import DIAGNOSTICS
from robustbench_lite.store.records import ModelRecord


@dataclass(frozen=True, kw_only=True)
class DiagnosticsRecord(ModelRecord):
    """One model's diagnostics as read back: the checks' numbers, the flags they raise (code ->
    the numbers in words) and the model and settings they were measured on."""

    defense: str | None
    samples: int | None
    zero_grad_share: float
    changed_share: float
    unbounded_success: float
    flags: Mapping[str, str]


def load(file: Path) -> DiagnosticsRecord | None:
    """A diagnostics record that verifies (hashes, and flags that its own numbers raise), else
    None: the leaderboard then flags the row `no-diagnostics`, never drops its flags silently."""
    try:
        record = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or tampering(record) is not None:
        return None
    try:
        return _typed(record, Path(file))
    except (KeyError, TypeError, ValueError):
        return None


def of_model(file: Path, identity: str) -> DiagnosticsRecord | None:
    """The diagnostics in `file` if they verify and were computed on the model `identity`
    (records.identity), else None."""
    found = load(file)
    return found if found is not None and found.model_identity == identity else None


def config(model_key: str, dataset: str, seed: int, eot_draws: int) -> dict[str, Any]:
    """What a diagnostics record is keyed by (recomputed when any of it changes)."""
    return {
        "kind": DIAGNOSTICS,
        "model_key": model_key,
        "dataset": dataset,
        "seed": seed,
        "samples": SAMPLES,
        "eot_draws": eot_draws,
    }


def _typed(record: dict[str, Any], source: Path) -> DiagnosticsRecord:
    """The record of a sealed file; a TypeError, KeyError or ValueError where its numbers are
    not numbers, its fields not of their type, or its flags not the ones its numbers raise."""
    shares = [float(record[k]) for k in ("zero_grad_share", "changed_share", "unbounded_success")]
    flags = record.get("flags") or {}
    if not isinstance(flags, Mapping) or set(flags_of(*shares)) != set(flags):
        raise ValueError("its flags are not the ones its numbers raise")
    zero_grad, changed, unbounded = shares
    return DiagnosticsRecord(
        defense=optional(record, "defense", str),
        config=of_type(record["config"], dict),
        config_hash=of_type(record["config_hash"], str),
        samples=optional(record, "samples", int),
        zero_grad_share=zero_grad,
        changed_share=changed,
        unbounded_success=unbounded,
        flags={str(code): str(detail) for code, detail in flags.items()},
        weights_sha256=optional(record, "weights_sha256", str),
        data_sha256=optional(record, "data_sha256", str),
        wall_time_s=None if record.get("wall_time_s") is None else float(record["wall_time_s"]),
        content_hash=of_type(record["content_hash"], str),
        source=source,
    )
