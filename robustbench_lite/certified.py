"""Certified accuracy: the per-sample certificates of a defense that certifies, as result files.

Beside a defense's cells lies `certified.json` (the dataset's default Linf eps) or
`certified@eps=<e>.json`, with the per-sample `certified` flags on the same test samples as the
attacks. The leaderboard turns them into `certified_acc` columns; `violations` checks them against
the attacks' outcomes (a certified sample that an attack broke means an unsound certificate).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.cache import tampering
from robustbench_lite.errors import RBError
from robustbench_lite.identity import model_identity

log = logging.getLogger(__name__)

STEM = "certified"
COLUMN = "certified_acc"
THREAT_MODEL = "linf"  # what `Defense.certify` certifies: the Linf ball of radius eps


def eps_values(default: float, attacked: list[float]) -> list[float]:
    """Certify at the dataset's default eps, and at every other eps a Linf attack runs at (so a
    spatial or L2 cell's eps never produces a Linf certificate)."""
    values = [default]
    for eps in attacked:
        if 0 < eps <= 1 and not any(math.isclose(eps, v) for v in values):
            values.append(eps)
    return values


def suffix(eps: float, default: float) -> str:
    """'' at the default eps, else '@eps=<e>' (as attack cells name theirs)."""
    return "" if math.isclose(eps, default) else f"@eps={eps:g}"


def is_current(path: Path, digest: str, weights: str | None = None) -> bool:
    """Whether `path` holds a certificate computed under the config with hash `digest` (and,
    when `weights` is known, on those weights)."""
    try:
        cert = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not (isinstance(cert, dict) and tampering(cert) is None):
        return False
    return cert["config_hash"] == digest and weights in (None, cert.get("weights_sha256"))


def record(
    config: dict[str, Any], digest: str, correct: torch.Tensor, certified: torch.Tensor
) -> dict[str, Any]:
    """The certificate file's content: accuracies plus per-sample flags."""
    if bool((certified & ~correct).any()):
        raise RBError(
            f"defense {config['defense']['name']} certified {int((certified & ~correct).sum())} "
            "samples that it misclassifies: its certificate is unsound"
        )
    return {
        "kind": "certificate",
        **{k: config[k] for k in ("schema", "dataset", "seed", "threat_model", "eps", "n")},
        "defense": config["defense"]["name"],
        "column": config["column"],
        "config_hash": digest,
        "config": config,
        "clean_acc": float(correct.double().mean()),
        "certified_acc": float(certified.double().mean()),
        "samples": {
            "index": list(range(len(correct))),
            "clean_correct": correct.tolist(),
            "certified": certified.tolist(),
        },
    }


def is_certificate(path: Path) -> bool:
    """Certificate files sit beside the cells; cell readers skip them by name."""
    return path.stem == STEM or path.stem.startswith(STEM + "@")


def load(cell_dir: Path) -> list[dict[str, Any]]:
    """Every certificate file under `cell_dir` (one folder per defense)."""
    found = []
    for path in sorted(Path(cell_dir).glob("*/*.json")):
        if not is_certificate(path):
            continue
        try:
            cert = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RBError(f"corrupt certificate {path} ({exc}); delete it and rerun") from None
        problem = tampering(cert) if isinstance(cert, dict) else "not a JSON object"
        if problem:
            raise RBError(f"refusing certificate {path}: {problem}; delete it and rerun")
        found.append(cert)
    return found


def columns(cell_dir: Path) -> dict[tuple[str, str], dict[str, tuple[float, int]]]:
    """(defense, model key) -> {certified_acc[@eps=e]: (accuracy, samples)}."""
    out: dict[tuple[str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
    for cert in load(cell_dir):
        out[cert["defense"], model_identity(cert)][cert["column"]] = (
            cert["certified_acc"],
            int(cert["n"]),
        )
    return dict(out)


def violations(cell_dir: Path, cells: list[dict[str, Any]]) -> list[str]:
    """Samples certified at some eps that an attack cell of the same threat model and eps broke."""
    found = []
    for cert in load(cell_dir):
        flags = dict(zip(cert["samples"]["index"], cert["samples"]["certified"], strict=True))
        for cell in cells:
            same = cell["defense"] == cert["defense"] and cell["threat_model"] == THREAT_MODEL
            same = same and model_identity(cell) == model_identity(cert)  # the same model's
            if not (same and math.isclose(cell["eps"], cert["eps"])):
                continue
            robust = dict(zip(cell["samples"]["index"], cell["samples"]["robust"], strict=True))
            broken = sorted(i for i, ok in flags.items() if ok and i in robust and not robust[i])
            if broken:
                found.append(f"{cert['defense']} x {cell['cell']}: certified but broken {broken}")
    return found
