"""Certified accuracy: the per-sample certificates of a defense that certifies, as result files.

Beside a defense's cells lies `certified.json` (the dataset's default Linf eps) or
`certified@eps=<e>.json`, with the per-sample `certified` flags on the same test samples as the
attacks. A certificate is the defense's word unless the runner recomputes it: where the model is
made of the layers interval bound propagation covers (Gowal et al. 2018), the runner certifies its
own instance itself, its flags are the `certified` ones (`verified_by: "ibp"`) and the defense's
are kept beside them as `claimed`; elsewhere the defense's flags are recorded as they are,
`verified_by: null`. The leaderboard turns verified certificates into `certified_acc` columns and
claimed ones into `claimed_certified_acc` columns, never the one for the other; the invariants
check both against the attacks' outcomes (a certified sample that an attack broke means an unsound
certificate).
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

COLUMN = "certified_acc"  # a certificate the runner recomputed itself
CLAIMED = "claimed_" + COLUMN  # a certificate it could not: the defense's word
VERIFIED_BY = "ibp"  # what the runner recomputes certificates with (protocol/interval_bounds.py)
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


def is_verified(column: str) -> bool:
    """Whether a leaderboard column holds a certified accuracy the runner recomputed itself."""
    return column.startswith(COLUMN)


def shown_column(cert: dict[str, Any]) -> str:
    """The leaderboard column of a certificate file: its `certified_acc[@eps=e]` only when the
    runner verified it, else `claimed_certified_acc[@eps=e]` (files that predate verification
    included: nothing recomputed them)."""
    column = str(cert.get("column") or COLUMN)
    if cert.get("verified_by") == VERIFIED_BY or column.startswith(CLAIMED):
        return column
    return CLAIMED + column.removeprefix(COLUMN)


def record(
    config: dict[str, Any],
    digest: str,
    correct: torch.Tensor,
    certified: torch.Tensor,
    *,
    claimed: torch.Tensor | None = None,
    verified_by: str | None = None,
) -> dict[str, Any]:
    """The certificate file's content: accuracies plus per-sample flags.

    `certified` are the flags that count: the runner's own when `verified_by` names how it
    recomputed them (the defense's `claimed` flags then lie beside them, however many more or
    fewer they are), else the defense's claim. `config["column"]` is the verified column's name;
    a claimed certificate is filed under CLAIMED instead."""
    claimed = certified if claimed is None or verified_by is None else claimed
    if bool((certified & ~correct).any()):
        raise RBError(
            f"defense {config['defense']['name']} certified {int((certified & ~correct).sum())} "
            "samples that it misclassifies: its certificate is unsound"
        )
    return {
        "kind": "certificate",
        **{k: config[k] for k in ("schema", "dataset", "seed", "threat_model", "eps", "n")},
        "defense": config["defense"]["name"],
        "column": shown_column({"column": config["column"], "verified_by": verified_by}),
        "verified_by": verified_by,
        "config_hash": digest,
        "config": config,
        "clean_acc": float(correct.double().mean()),
        "certified_acc": float(certified.double().mean()),
        "claimed_acc": float(claimed.double().mean()),
        "samples": {
            "index": list(range(len(correct))),
            "clean_correct": correct.tolist(),
            "certified": certified.tolist(),
            "claimed": claimed.tolist(),
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
    """(defense, model key) -> {[claimed_]certified_acc[@eps=e]: (accuracy, samples)}."""
    out: dict[tuple[str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
    for cert in load(cell_dir):
        out[cert["defense"], model_identity(cert)][shown_column(cert)] = (
            cert["certified_acc"],
            int(cert["n"]),
        )
    return dict(out)


def _contradiction(cert: dict[str, Any]) -> str | None:
    """Why a certificate's numbers do not follow from its per-sample flags, or None."""
    samples, n = cert.get("samples"), cert.get("n")
    if not isinstance(samples, dict) or not isinstance(n, int):
        return "it has no per-sample flags and sample count"
    if cert.get("verified_by") not in (None, VERIFIED_BY):
        return f"it names an unknown verifier {cert.get('verified_by')!r}"
    if cert.get("verified_by") == VERIFIED_BY and not is_verified(str(cert.get("column"))):
        return f"it is verified but files itself under {cert.get('column')!r}"
    pairs = [("clean_acc", "clean_correct"), ("certified_acc", "certified")]
    if "claimed" in samples:  # files that predate verification have no claim of their own
        pairs.append(("claimed_acc", "claimed"))
    for _, key in pairs:
        values = samples.get(key)
        if not (isinstance(values, list) and len(values) == n):
            return f"its per-sample {key!r} is not a list of {n} entries"
        if not all(isinstance(v, bool) for v in values):
            return f"its per-sample {key!r} holds entries of the wrong type"
    unverified = cert.get("verified_by") is None
    if unverified and samples.get("claimed", samples["certified"]) != samples["certified"]:
        return "nothing verified it, yet its certified flags are not the defense's claim"
    for key, flags in pairs:
        derived = sum(samples[flags]) / max(1, n)
        if not (isinstance(cert.get(key), float | int) and math.isclose(cert[key], derived)):
            return f"its {key} {cert.get(key)!r} contradicts its per-sample flags ({derived!r})"
    return None
