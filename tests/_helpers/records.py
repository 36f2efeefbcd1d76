"""Hand-made records for report tests: a `CellRecord` from the few fields a test cares about
(the rest neutral defaults), and diagnostics that raise nothing, built without the store's
self-check, as no file is read."""

from __future__ import annotations

from typing import Any

from robustbench_lite.store.cell_record import CellRecord, QueryStats, Samples
from robustbench_lite.store.diagnostics import DiagnosticsRecord


def fake_cell(samples: dict[str, Any] | None = None, **fields: Any) -> CellRecord:
    """A record of `fields` over per-sample arrays `samples` (index, robust, ... as lists; the
    arrays not given are filled in for every sample: correct, robust, 1 query, no distance)."""
    given = dict(samples or {})
    n = len(next(iter(given.values()), []))
    arrays: dict[str, Any] = {
        "index": list(range(n)),
        "clean_correct": [True] * n,
        "robust": [True] * n,
        "adv_pred": [0] * n,
        "queries": [1] * n,
        "distance": [None] * n,
        "extras": {},
        **given,
    }
    cell = str(fields.get("cell", "pgd"))
    median = fields.pop("median_success", None)
    defaults: dict[str, Any] = {
        "schema": 2,
        "dataset": "mnist-5k",
        "seed": 0,
        "threat_model": "linf",
        "eps": 0.3,
        "budget": None,
        "defense": "fake",  # no shipped model: no weights-not-shipped flag
        "attack": cell,
        "cell": cell,
        "knowledge": "gradient",
        "minimal": False,
        "config_hash": "",
        "config": {},
        "n": n,
        "clean_acc": 1.0,
        "robust_acc": 1.0,
        "attacked": n,
        "success_rate": 0.0,
        "queries": QueryStats(
            total=n, mean=None, median=None, max=None, mean_success=None, median_success=median
        ),
        "median_distance": None,
        "samples": Samples(**arrays),
        "no_eot": False,
        "eot_draws": 1,
        "versions": {},
        "wall_time_s": 0.0,
        "profile": "quick",
        "max_eval_samples": None,
    }
    return CellRecord(**{**defaults, **fields})


def clean_diagnostics(**fields: Any) -> DiagnosticsRecord:
    """Diagnostics of a model that passed every check (no flags), with `fields` overridden."""
    defaults: dict[str, Any] = {
        "defense": "fake",
        "config": {},
        "config_hash": "",
        "samples": 50,
        "zero_grad_share": 0.0,
        "changed_share": 0.0,
        "unbounded_success": 1.0,
        "flags": {},
        "weights_sha256": None,
        "data_sha256": None,
        "wall_time_s": 0.0,
        "content_hash": "",
    }
    return DiagnosticsRecord(**{**defaults, **fields})
