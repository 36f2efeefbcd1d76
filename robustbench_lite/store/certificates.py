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
certificate). The runner writes a certificate as a dict (`record`); it is read back as a typed
`CertificateRecord` (`load`), so the report reads attributes, never string keys.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.threat_models import TM
from robustbench_lite.store.fields import number, of_type, optional, optional_number
from robustbench_lite.store.files import tampering
from robustbench_lite.store.layout import GridLayout, is_certificate
from robustbench_lite.store.records import ModelRecord

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


def shown_column(column: str | None, verified_by: str | None) -> str:
    """The leaderboard column of a certificate filed under `column`: its `certified_acc[@eps=e]`
    only when the runner verified it, else `claimed_certified_acc[@eps=e]` (files that predate
    verification included: nothing recomputed them)."""
    column = column or COLUMN
    if verified_by == VERIFIED_BY or column.startswith(CLAIMED):
        return column
    return CLAIMED + column.removeprefix(COLUMN)


@dataclass(frozen=True, kw_only=True)
class CertificateSamples:
    """Per-sample flags, in sample order (`claimed` None in files that predate verification)."""

    index: list[int]
    clean_correct: list[bool]
    certified: list[bool]
    claimed: list[bool] | None

    @property
    def certified_by_index(self) -> dict[int, bool]:
        """The per-sample certified flags by sample index."""
        return dict(zip(self.index, self.certified, strict=True))


@dataclass(frozen=True, kw_only=True)
class CertificateRecord(ModelRecord):
    """One certificate file as read back (verified): which model at what eps, the accuracies and
    the per-sample flags they follow from, and who certified them (`verified_by`, None for the
    defense's own word). Fields older files lack are None ({} for `versions`)."""

    kind: str | None
    schema: int | None
    dataset: str | None
    seed: int | None
    threat_model: str | None
    eps: float
    n: int
    defense: str
    column: str | None
    verified_by: str | None
    clean_acc: float
    certified_acc: float
    claimed_acc: float | None
    samples: CertificateSamples
    unverifiable: str | None
    versions: Mapping[str, Any]

    @property
    def shown_column(self) -> str:
        """Its leaderboard column (`shown_column`): a claimed one unless the runner verified it."""
        return shown_column(self.column, self.verified_by)


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
        "column": shown_column(config["column"], verified_by),
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


def load(cell_dir: Path) -> list[CertificateRecord]:
    """Every certificate file under `cell_dir` (one folder per defense), verified and typed; a
    file that does not verify is an RBError."""
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
        if problem is None:
            try:
                found.append(_typed(cert, path))
            except (KeyError, TypeError) as exc:
                problem = f"a field is missing or not of its type ({exc})"
        if problem:
            raise RBError(f"refusing certificate {path}: {problem}; delete it and rerun")
    return found


def columns(cell_dir: Path) -> dict[tuple[str, str], dict[str, tuple[float, int]]]:
    """(defense, model key) -> {[claimed_]certified_acc[@eps=e]: (accuracy, samples)}."""
    out: dict[tuple[str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
    for cert in load(cell_dir):
        out[cert.defense, cert.model_identity][cert.shown_column] = (cert.certified_acc, cert.n)
    return dict(out)


def _typed(cert: dict[str, Any], source: Path) -> CertificateRecord:
    """The record of a file that verifies (`_contradiction` checked its flags and accuracies);
    a KeyError or TypeError where a field is missing or not of its type."""
    samples = cert["samples"]
    index = of_type(samples["index"], list)
    if len(index) != cert["n"] or not all(isinstance(i, int) for i in index):
        raise TypeError(f"its per-sample 'index' is not a list of {cert['n']} sample indices")
    return CertificateRecord(
        kind=optional(cert, "kind", str),
        schema=optional(cert, "schema", int),
        dataset=optional(cert, "dataset", str),
        seed=optional(cert, "seed", int),
        threat_model=optional(cert, "threat_model", str),
        eps=number(cert, "eps"),
        n=of_type(cert["n"], int),
        defense=of_type(cert["defense"], str),
        column=optional(cert, "column", str),
        verified_by=optional(cert, "verified_by", str),
        config_hash=of_type(cert["config_hash"], str),
        config=of_type(cert["config"], dict),
        clean_acc=number(cert, "clean_acc"),
        certified_acc=number(cert, "certified_acc"),
        claimed_acc=optional_number(cert, "claimed_acc"),
        samples=CertificateSamples(
            index=index,
            clean_correct=samples["clean_correct"],
            certified=samples["certified"],
            claimed=samples.get("claimed"),
        ),
        unverifiable=optional(cert, "unverifiable", str),
        weights_sha256=optional(cert, "weights_sha256", str),
        data_sha256=optional(cert, "data_sha256", str),
        versions=optional(cert, "versions", dict) or {},
        wall_time_s=optional_number(cert, "wall_time_s"),
        content_hash=of_type(cert["content_hash"], str),
        source=source,
    )


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
