"""Certified accuracy: the per-sample certificates of a defense that certifies, as result files.

Beside a defense's cells lies `certified.json` (the dataset's default Linf eps) or
`certified@eps=<e>.json`, with the per-sample `certified` flags on the same test samples as the
attacks. The leaderboard turns them into `certified_acc` columns; the invariants check them against the
attacks' outcomes (a certified sample that an attack broke means an unsound certificate).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.threat_models import TM
from robustbench_lite.store.files import tampering
from robustbench_lite.store.layout import GridLayout, is_certificate
from robustbench_lite.store.records import model_identity

COLUMN = "certified_acc"
THREAT_MODEL = TM.LINF  # what `Defense.certify` certifies: the Linf ball of radius eps


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


def load(cell_dir: Path) -> list[dict[str, Any]]:
    """Every certificate file under `cell_dir` (one folder per defense)."""
    found = []
    for path in GridLayout(Path(cell_dir)).records():
        if not is_certificate(path):
            continue
        try:
            cert = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RBError(f"corrupt certificate {path} ({exc}); delete it and rerun") from None
        problem = tampering(cert) if isinstance(cert, dict) else "not a JSON object"
        if problem is None:
            problem = _contradiction(cert)
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


def _contradiction(cert: dict[str, Any]) -> str | None:
    """Why a certificate's numbers do not follow from its per-sample flags, or None."""
    samples, n = cert.get("samples"), cert.get("n")
    if not isinstance(samples, dict) or not isinstance(n, int):
        return "it has no per-sample flags and sample count"
    for key in ("clean_correct", "certified"):
        values = samples.get(key)
        if not (isinstance(values, list) and len(values) == n):
            return f"its per-sample {key!r} is not a list of {n} entries"
        if not all(isinstance(v, bool) for v in values):
            return f"its per-sample {key!r} holds entries of the wrong type"
    for key, flags in (("clean_acc", "clean_correct"), ("certified_acc", "certified")):
        derived = sum(samples[flags]) / max(1, n)
        if not (isinstance(cert.get(key), float | int) and math.isclose(cert[key], derived)):
            return f"its {key} {cert.get(key)!r} contradicts its per-sample flags ({derived!r})"
    return None
