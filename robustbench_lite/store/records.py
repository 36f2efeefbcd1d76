"""Result records: a cell's per-sample arrays and config -> the JSON record the store writes, and
back: every read verifies the record's hashes and its aggregates against its own per-sample
arrays. Which model a record was computed on is its identity (model key and weights' SHA-256):
two retrainings of one config can differ in the last bits, so their results never mix."""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import torch

from robustbench_lite.protocol.evaluate import CellArrays
from robustbench_lite.protocol.indicators import shares
from robustbench_lite.store.files import config_hash

#: What every cell record holds (beside its config and hashes).
REQUIRED = ("defense", "attack", "cell", "threat_model", "clean_acc", "robust_acc", "samples")

#: 2: each batch seeded from (cell seed, batch index), the verifier on its own random stream;
#: cells of schema 1 cannot be reproduced by a rerun, so their config hashes no longer match.
RESULT_SCHEMA = 2


def versions() -> dict[str, Any]:
    """Versions (and the torch thread count: training differs between 1 and 2 threads) that
    shape the numbers; stored in every result."""
    return {
        "robustbench_lite": importlib.metadata.version("robustbench_lite"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "foolbox": importlib.metadata.version("foolbox"),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def summary(
    correct: torch.Tensor, robust: torch.Tensor, queries: torch.Tensor, distance: torch.Tensor
) -> dict[str, Any]:
    """The aggregate numbers of a cell, all derived from its per-sample arrays (so a reader can
    recompute and compare them: `cell_problem`)."""
    attacked = correct
    success = attacked & ~robust
    q_att = queries[attacked].double()
    q_succ = queries[success].double()
    return {
        "n": len(correct),
        "clean_acc": float(correct.double().mean()),
        "robust_acc": float(robust.double().mean()),
        "attacked": int(attacked.sum()),
        "success_rate": float(success.sum()) / max(1, int(attacked.sum())),
        "queries": {
            "total": int(q_att.sum()),
            "mean": _stat(q_att, "mean"),
            "median": _stat(q_att, "median"),
            "max": _stat(q_att, "max"),
            "mean_success": _stat(q_succ, "mean"),
            "median_success": _stat(q_succ, "median"),
        },
        "median_distance": _stat(distance[attacked], "median"),
    }


def cell_record(
    config: dict[str, Any], *, cell: str, knowledge: str, minimal: bool, arrays: CellArrays
) -> dict[str, Any]:
    """The JSON record of one cell: accuracies, query and distance statistics, per-sample arrays."""
    correct, robust, queries, distance = (
        arrays.correct,
        arrays.robust,
        arrays.queries,
        arrays.distance,
    )
    return {
        **{k: config[k] for k in ("schema", "dataset", "seed", "threat_model", "eps", "budget")},
        "defense": config["defense"]["name"],
        "attack": config["attack"]["name"],
        "cell": cell,
        "knowledge": knowledge,
        "minimal": minimal,
        "config_hash": config_hash(config),
        "config": config,
        **summary(correct, robust, queries, distance),
        "indicators": shares(arrays.indicators),
        **(
            {}
            if arrays.outside is None
            else {"out_of_ball": out_of_ball(correct, queries, arrays.outside)}
        ),
        "samples": {
            "index": list(range(len(correct))),
            "clean_correct": correct.tolist(),
            "robust": robust.tolist(),
            "adv_pred": arrays.adv_pred.tolist(),
            "queries": queries.tolist(),
            "distance": [None if not math.isfinite(d) else d for d in distance.tolist()],
            "extras": arrays.extras,
            "indicators": arrays.indicators,
            **({} if arrays.outside is None else {"outside": arrays.outside.tolist()}),
        },
    }


def out_of_ball(
    correct: torch.Tensor, queries: torch.Tensor, outside: torch.Tensor
) -> float | None:
    """The share of an attack's answered rows (on the samples it attacked) that lay outside the
    threat model or [0, 1]: what the indicators leave out (None where nothing was queried)."""
    total = int(queries[correct].sum())
    return int(outside[correct].sum()) / total if total else None


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


#: Per-sample arrays of a cell and what each entry must be.
_ARRAYS: dict[str, Any] = {
    "index": _is_int,
    "clean_correct": lambda v: isinstance(v, bool),
    "robust": lambda v: isinstance(v, bool),
    "adv_pred": _is_int,
    "queries": lambda v: _is_int(v) and v >= 0,
    "distance": lambda v: v is None or (_is_number(v) and v >= 0),
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is b
    return _is_number(a) and _is_number(b) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _outside_problem(record: dict[str, Any], samples: dict[str, Any], n: int) -> str | None:
    """Why a cell's out-of-ball counts (absent from cells older than them) contradict its
    queries or its share, or None."""
    if "outside" not in samples:
        return "its out_of_ball share has no per-sample counts" if "out_of_ball" in record else None
    values = samples["outside"]
    if not isinstance(values, list) or len(values) != n or not all(_is_int(v) for v in values):
        return f"its per-sample 'outside' is not a list of {n} counts"
    if any(not 0 <= v <= q for v, q in zip(values, samples["queries"], strict=True)):
        return "its per-sample 'outside' counts exceed its queries"
    share = out_of_ball(
        torch.tensor(samples["clean_correct"], dtype=torch.bool),
        torch.tensor(samples["queries"], dtype=torch.int64),
        torch.tensor(values, dtype=torch.int64),
    )
    if not _same(record.get("out_of_ball"), share):
        return "its out_of_ball share contradicts its per-sample counts"
    return None


def cell_problem(record: dict[str, Any]) -> str | None:
    """Why a cell record contradicts itself (arrays of the wrong length or type, aggregates that
    its per-sample arrays do not give), or None. Checked on every read, past the content hash."""
    samples, n = record.get("samples"), record.get("n")
    if not isinstance(samples, dict) or not _is_int(n) or n < 0:
        return "it has no per-sample arrays and sample count"
    for key, valid in _ARRAYS.items():
        values = samples.get(key)
        if not isinstance(values, list) or len(values) != n:
            return f"its per-sample {key!r} is not a list of {n} entries"
        if not all(valid(v) for v in values):
            return f"its per-sample {key!r} holds entries of the wrong type"
    if samples["index"] != list(range(n)):
        return "its sample index is not 0..n-1"
    extras = samples.get("extras", {})
    if not isinstance(extras, dict) or any(
        not isinstance(v, list) or len(v) != n for v in extras.values()
    ):
        return "its per-sample extras are not lists of n entries"
    indicators = samples.get("indicators", {})
    if not isinstance(indicators, dict) or any(
        not isinstance(v, list)
        or len(v) != n
        or any(f is not None and not isinstance(f, bool) for f in v)
        for v in indicators.values()
    ):
        return "its per-sample indicators are not lists of n flags"
    if "indicators" in record and not _same(record["indicators"], shares(indicators)):
        return "its indicator shares contradict its per-sample indicators"
    problem = _outside_problem(record, samples, n)
    if problem:
        return problem
    distance = [math.inf if d is None else float(d) for d in samples["distance"]]
    derived = summary(
        torch.tensor(samples["clean_correct"], dtype=torch.bool),
        torch.tensor(samples["robust"], dtype=torch.bool),
        torch.tensor(samples["queries"], dtype=torch.int64),
        torch.tensor(distance, dtype=torch.float64),
    )
    for key, value in derived.items():
        if not _same(record.get(key), value):
            return f"its {key} {record.get(key)!r} contradicts its per-sample arrays ({value!r})"
    return None


def _stat(values: torch.Tensor, how: str) -> float | None:
    """mean / median / max of a 1-D tensor as a JSON number (None when empty or infinite)."""
    if len(values) == 0:
        return None
    arr = values.double().numpy()
    reducers: dict[str, Callable[[np.ndarray], Any]] = {
        "mean": np.mean,
        "median": np.median,
        "max": np.max,
    }
    value = reducers[how](arr)
    return float(value) if math.isfinite(value) else None


def owned(path: Path) -> bool:
    """Whether a `.json` file beside the cells is one the store wrote (a sealed JSON object);
    anything else (a user's notes) is not read as a result, nor overwritten or removed."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "content_hash" in record


def identity(config: Mapping[str, Any] | None, weights: str | None) -> str:
    """`<model key>:<weights SHA-256>` of a record ('' parts in files that predate them): the
    `model_identity` of a cell, certificate and diagnostics record alike."""
    return f"{(config or {}).get('model_key', '')!s}:{weights or ''}"


def short(model: str) -> str:
    """A row label's suffix: the weights' hash where known, else the model key (8 characters)."""
    key, _, weights = model.partition(":")
    return (weights or key)[:8]


@dataclass(frozen=True, kw_only=True)
class ModelRecord:
    """What a record of one model (a certificate, diagnostics) shares: its config and hash, the
    weights and data it was computed on, its time and seal, and where it was read from."""

    config: Mapping[str, Any]
    config_hash: str
    weights_sha256: str | None
    data_sha256: str | None  # files older than data keys lack it
    wall_time_s: float | None
    content_hash: str
    # where it was read from: not part of the file
    source: Path | None = field(default=None, compare=False)

    @property
    def model_identity(self) -> str:
        """`<model key>:<weights SHA-256>`: the model it was computed on (`identity`)."""
        return identity(self.config, self.weights_sha256)
