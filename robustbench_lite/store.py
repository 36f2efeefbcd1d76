"""Result records: a cell's per-sample arrays and config -> the JSON record the store writes."""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robustbench_lite import __version__
from robustbench_lite.cache import config_hash, seal, write_json
from robustbench_lite.cell import CellArrays

#: 2: each batch seeded from (cell seed, batch index), the verifier on its own random stream;
#: cells of schema 1 cannot be reproduced by a rerun, so their config hashes no longer match.
RESULT_SCHEMA = 2


def versions() -> dict[str, Any]:
    """Versions (and the torch thread count: training differs between 1 and 2 threads) that
    shape the numbers; stored in every result."""
    return {
        "robustbench_lite": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "foolbox": importlib.metadata.version("foolbox"),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def adv_path(cell_path: Path) -> Path:
    """The sibling file holding a cell's verified adversarial inputs (clean x where unattacked)."""
    return cell_path.with_suffix(".adv.safetensors")


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
        "samples": {
            "index": list(range(len(correct))),
            "clean_correct": correct.tolist(),
            "robust": robust.tolist(),
            "adv_pred": arrays.adv_pred.tolist(),
            "queries": queries.tolist(),
            "distance": [None if not math.isfinite(d) else d for d in distance.tolist()],
            "extras": arrays.extras,
        },
    }


def _is_int(v: Any) -> bool:
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
    value = {"mean": np.mean, "median": np.median, "max": np.max}[how](arr)
    return float(value) if math.isfinite(value) else None


def shard_dir(cell_path: Path) -> Path:
    """Where a cell's finished shards wait until the cell is whole (hidden from the board)."""
    return cell_path.parent / ".shards" / cell_path.stem


def write_shard(
    cell_path: Path,
    digest: str,
    k: int,
    index: torch.Tensor,
    arrays: CellArrays,
    seconds: float,
    *,
    save_adv: bool,
) -> dict[str, Any]:
    """One finished shard: the per-sample arrays of its samples (`index`) and the wall seconds
    it took, atomically."""
    rows = index.tolist()
    record = {
        "config_hash": digest,
        "shard": k,
        "index": rows,
        "robust": arrays.robust[index].tolist(),
        "adv_pred": arrays.adv_pred[index].tolist(),
        "queries": arrays.queries[index].tolist(),
        "distance": [None if not math.isfinite(d) else d for d in arrays.distance[index].tolist()],
        "extras": {key: [values[i] for i in rows] for key, values in arrays.extras.items()},
        "seconds": round(seconds, 3),
    }
    folder = shard_dir(cell_path)
    if save_adv:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"x": arrays.x_verified[index].contiguous()}, str(folder / f"{k}.adv.safetensors")
        )
    write_json(folder / f"{k}.json", seal(record))
    return record


def read_shards(cell_path: Path, digest: str) -> dict[int, dict[str, Any]]:
    """The finished shards of a cell made under config hash `digest` (others are ignored)."""
    found = {}
    for path in sorted(shard_dir(cell_path).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("config_hash") == digest:
            body = {k: v for k, v in record.items() if k != "content_hash"}
            if seal(body)["content_hash"] == record.get("content_hash"):
                found[int(record["shard"])] = record
    return found


def merge_shard(arrays: CellArrays, record: dict[str, Any], cell_path: Path) -> None:
    """Put a shard's per-sample outcomes into the cell's arrays."""
    index = torch.tensor(record["index"], dtype=torch.int64)
    if len(index) == 0:
        return
    arrays.robust[index] = torch.tensor(record["robust"], dtype=torch.bool)
    arrays.adv_pred[index] = torch.tensor(record["adv_pred"], dtype=arrays.adv_pred.dtype)
    arrays.queries[index] = torch.tensor(record["queries"], dtype=torch.int64)
    distance = [math.inf if d is None else d for d in record["distance"]]
    arrays.distance[index] = torch.tensor(distance, dtype=arrays.distance.dtype)
    for key, values in record["extras"].items():
        column = arrays.extras.setdefault(key, [None] * len(arrays.correct))
        for i, v in zip(record["index"], values, strict=True):
            column[i] = v
    adv = shard_dir(cell_path) / f"{record['shard']}.adv.safetensors"
    if adv.is_file():
        arrays.x_verified[index] = load_file(str(adv))["x"]


_SHARD_FILE = re.compile(r"\d+(\.adv\.safetensors|\.json)")


def clear_shards(cell_path: Path) -> None:
    """Remove a finished cell's shard files (those the store wrote, and no other), then the
    shard folders if that left them empty."""
    folder = shard_dir(cell_path)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _SHARD_FILE.fullmatch(path.name) and path.is_file():
            path.unlink()
    for empty in (folder, folder.parent):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
