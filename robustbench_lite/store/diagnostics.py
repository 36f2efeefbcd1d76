"""A model's diagnostics record (protocol/checks.py measures, this stores): keyed by its model
and settings, recomputed when any of them changes, and read back only when its flags follow from
its own numbers; a missing or inconsistent one is the leaderboard's `no-diagnostics` flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robustbench_lite.protocol.checks import SAMPLES, flags_of
from robustbench_lite.store.files import tampering
from robustbench_lite.store.layout import DIAGNOSTICS
from robustbench_lite.store.records import model_identity


def load(file: Path) -> dict[str, Any] | None:
    """A diagnostics record that verifies (hashes, and flags that its own numbers raise), else
    None: the leaderboard then flags the row `no-diagnostics`, never drops its flags silently."""
    try:
        record = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or tampering(record) is not None:
        return None
    try:
        raised = flags_of(
            float(record["zero_grad_share"]),
            float(record["changed_share"]),
            float(record["unbounded_success"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if set(raised) != set(record.get("flags") or {}):
        return None
    return record


def of_model(file: Path, identity: str) -> dict[str, Any] | None:
    """The diagnostics in `file` if they verify and were computed on the model `identity`
    (records.model_identity), else None."""
    found = load(file)
    return found if found is not None and model_identity(found) == identity else None


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
