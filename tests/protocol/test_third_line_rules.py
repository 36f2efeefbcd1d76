"""The rules behind the third line (issue 37): which models the runner recomputes certificates of
with interval bounds (Gowal et al. 2018), how a certificate file says whether it was recomputed,
and how `rb check` compares a verified and a claimed certified accuracy."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_lite.defenses._common.models import ibp_cnn, mnist_cnn
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import interval_bounds
from robustbench_lite.report import flags
from robustbench_lite.running.check.compare import compare
from robustbench_lite.running.check.rerun import _subset
from robustbench_lite.store import certificates
from robustbench_lite.store.files import config_hash, seal


class _Sequential(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # not what its layers compute
        return -super().forward(x)


class _Custom(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class _Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def _hooked() -> nn.Module:
    model = mnist_cnn(width=4, hidden=8)
    model[-1].register_forward_hook(lambda _m, _i, out: -out)
    return model


def _own_forward() -> nn.Module:
    model = mnist_cnn(width=4, hidden=8)
    model[0].forward = lambda x: x  # type: ignore[method-assign]
    return model


UNVERIFIABLE: dict[str, Callable[[], nn.Module]] = {
    "batch norm": lambda: nn.Sequential(nn.BatchNorm2d(1), *mnist_cnn(width=4, hidden=8)),
    "a custom model": lambda: _Custom(mnist_cnn(width=4, hidden=8)),
    "a custom layer": lambda: nn.Sequential(_Custom(nn.Flatten()), nn.Linear(784, 10)),
    "a Sequential subclass": lambda: _Sequential(nn.Flatten(), nn.Linear(784, 10)),
    "a Linear subclass": lambda: nn.Sequential(nn.Flatten(), _Linear(784, 10)),
    "a forward hook": _hooked,
    "an instance forward": _own_forward,
    "reflect padding": lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(1568, 10)
    ),
    "no final Linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.ReLU()),
}


def test_the_runner_recomputes_only_models_whose_forward_is_its_layers() -> None:
    assert interval_bounds.unverifiable(mnist_cnn()) is None
    assert interval_bounds.unverifiable(ibp_cnn("small")) is None
    nested = nn.Sequential(nn.Identity(), nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    assert interval_bounds.unverifiable(nested) is None
    for what, make in UNVERIFIABLE.items():
        assert interval_bounds.unverifiable(make()) is not None, what


def test_bounds_of_the_layers_do_not_bound_an_overridden_forward() -> None:
    """Why `unverifiable` looks past isinstance: the arithmetic alone certifies a Sequential
    subclass's samples that its own forward pass misclassifies."""
    torch.manual_seed(0)
    model, x = _Sequential(nn.Flatten(), nn.Linear(784, 10)), torch.rand(64, 1, 28, 28)
    y = model[1](model[0](x)).argmax(dim=1)  # what its layers say
    wrong = model(x).argmax(dim=1) != y
    assert bool((interval_bounds.certify(model, x, y, 1e-6) & wrong).any())


def _config(column: str = "certified_acc") -> dict[str, object]:
    config = {"schema": 2, "dataset": "d", "seed": 0, "threat_model": "linf", "eps": 0.3, "n": 4}
    return {**config, "defense": {"name": "x", "config": {}}, "column": column}


def _sealed(record: dict[str, object]) -> dict[str, object]:
    return seal({**record, "config_hash": config_hash(record["config"])})


def _load(tmp_path, record: dict[str, object]) -> list[certificates.CertificateRecord]:
    (tmp_path / "x").mkdir(exist_ok=True)
    (tmp_path / "x" / "certified.json").write_text(json.dumps(_sealed(record)))
    return certificates.load(tmp_path)


CORRECT = torch.tensor([True, True, True, False])


def test_a_record_keeps_the_claim_beside_the_runners_flags_and_says_which_counts(
    tmp_path,
) -> None:
    own, claim = torch.tensor([True, False, False, False]), torch.ones(4, dtype=torch.bool)
    verified = certificates.record(_config(), "h", CORRECT, own, claimed=claim, verified_by="ibp")
    assert verified["column"] == "certified_acc" and verified["certified_acc"] == 0.25
    assert verified["claimed_acc"] == 1.0 and verified["samples"]["claimed"] == [True] * 4
    modest = certificates.record(  # a defense that claims fewer still gets the runner's number
        _config(), "h", CORRECT, own, claimed=torch.zeros(4, dtype=torch.bool), verified_by="ibp"
    )
    assert modest["certified_acc"] == 0.25 and modest["claimed_acc"] == 0.0
    claimed = certificates.record(_config("certified_acc@eps=0.1"), "h", CORRECT, own)
    assert claimed["column"] == "claimed_certified_acc@eps=0.1" and claimed["verified_by"] is None
    assert certificates.columns(tmp_path) == {}
    assert [c.column for c in _load(tmp_path, verified)] == ["certified_acc"]
    with pytest.raises(RBError, match="unsound"):  # a claim still may not hold misclassified ones
        certificates.record(_config(), "h", CORRECT, claim)


def test_a_certificate_file_cannot_pass_a_claim_for_a_verified_number(tmp_path) -> None:
    own, claim = torch.tensor([True, False, False, False]), torch.tensor([True, True, True, False])
    verified = certificates.record(_config(), "h", CORRECT, own, claimed=claim, verified_by="ibp")
    relabelled = {**verified, "verified_by": None}  # the claim's flags under the runner's name
    with pytest.raises(RBError, match="not the defense's claim"):
        _load(tmp_path, relabelled)
    with pytest.raises(RBError, match="unknown verifier"):
        _load(tmp_path, {**verified, "verified_by": "trust-me"})
    with pytest.raises(RBError, match="verified but files itself"):
        _load(tmp_path, {**verified, "column": "claimed_certified_acc"})
    old = {k: v for k, v in verified.items() if k not in ("verified_by", "claimed_acc")}
    old["samples"] = {k: v for k, v in verified["samples"].items() if k != "claimed"}
    _load(tmp_path, old)  # a file from before verification: nothing recomputed it
    assert list(certificates.columns(tmp_path)[("x", ":")]) == ["claimed_certified_acc"]


def test_check_compares_a_claimed_certificate_as_an_ordinary_number() -> None:
    def board(**values: float) -> pd.DataFrame:
        return pd.DataFrame([{"defense": "d", "n": 100, "clean_acc": 0.9, **values}])

    verified = compare(board(certified_acc=0.4), board(certified_acc=0.399), tolerance=0.01,
                       strict=False)  # fmt: skip
    assert verified.failed, "a verified certified accuracy may not fall at all"
    within = compare(board(claimed_certified_acc=0.4), board(claimed_certified_acc=0.399),
                     tolerance=0.01, strict=False)  # fmt: skip
    assert not within.failed
    beyond = compare(board(claimed_certified_acc=0.4), board(claimed_certified_acc=0.35),
                     tolerance=0.01, strict=False)  # fmt: skip
    assert beyond.failed  # an ordinary fall beyond the tolerance
    untested = compare(board(claimed_certified_acc=0.4), board(claimed_certified_acc=0.35),
                       tolerance=None, strict=False)  # fmt: skip
    assert not untested.failed  # reported lower; the paired per-cell tests decide
    assert [c.verdict for c in untested.changes if c.cell.endswith("certified_acc")] == ["lower"]
    unverified = compare(board(certified_acc=0.4), board(claimed_certified_acc=0.4),
                         tolerance=0.01, strict=False)  # fmt: skip
    assert unverified.failed  # a verified baseline certificate never passes for a claim
    base = board(pgd=0.5, certified_acc=0.4, claimed_certified_acc=0.4)
    kept, rerun = _subset(base, base)  # both sides: no worst case reads as a new number
    assert list(kept.columns) == list(rerun.columns) == ["defense", "n", "clean_acc", "pgd"]


def test_a_claimed_column_raises_the_flag() -> None:
    assert flags.certificate_evidence(["certified_acc", "certified_acc@eps=0.1"]) == []
    raised = flags.certificate_evidence(["claimed_certified_acc"])
    assert [code for code, _ in raised] == ["unverified-certificate"]
    assert "unverified-certificate" in flags.FLAGS
