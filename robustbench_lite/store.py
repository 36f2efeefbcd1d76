"""Result records: a cell's per-sample arrays and config -> the JSON record the store writes."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lite import __version__
from robustbench_lite.cache import config_hash
from robustbench_lite.cell import CellArrays

RESULT_SCHEMA = 1


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
