"""Result records: a cell's per-sample arrays and config -> the JSON record the store writes."""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
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
    attacked = correct
    success = attacked & ~robust
    q_att = queries[attacked].double()
    q_succ = queries[success].double()
    return {
        **{k: config[k] for k in ("schema", "dataset", "seed", "threat_model", "eps", "budget")},
        "defense": config["defense"]["name"],
        "attack": config["attack"]["name"],
        "cell": cell,
        "knowledge": knowledge,
        "minimal": minimal,
        "config_hash": config_hash(config),
        "config": config,
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


def clear_shards(cell_path: Path) -> None:
    """Remove a finished cell's shard files."""
    folder = shard_dir(cell_path)
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
