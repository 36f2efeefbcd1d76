"""Finished shards of a cell in flight: written as they arrive, merged on a resume, and removed
(only the files the store wrote) once the cell is whole."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from robustbench_lite.protocol.evaluate import CellArrays
from robustbench_lite.store.files import seal, write_json
from robustbench_lite.store.layout import shard_dir


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
        "indicators": {k: [values[i] for i in rows] for k, values in arrays.indicators.items()},
        **({"outside": arrays.outside[index].tolist()} if arrays.outside is not None else {}),
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
    if "outside" in record and arrays.outside is not None:
        arrays.outside[index] = torch.tensor(record["outside"], dtype=torch.int64)
    for key, values in record.get("indicators", {}).items():
        column = arrays.indicators.setdefault(key, [None] * len(arrays.correct))
        for i, v in zip(record["index"], values, strict=True):
            column[i] = v
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
