"""The third line (issue 37, "a certificate is the defense's word"): a certificate the runner can
recompute with interval bound propagation (Gowal et al. 2018) is the runner's own, whatever the
defense claims; one it cannot is shown as claimed, flagged, and compared by `rb check` as an
ordinary number, never as a certificate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robustbench_lite import data
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import interval_bounds
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.report import leaderboard
from robustbench_lite.store.files import seal
from tests._helpers import doubles
from tests.protocol.hostile_cells import small_runner

HOSTILE = {
    "overclaim": "tests._helpers.hostile_defenses:Overclaim",
    "opaque-liar": "tests._helpers.hostile_defenses:OpaqueLiar",
}
COMMITTED = Path(__file__).parents[2] / "results" / "mnist-5k" / "quick" / "ibp" / "certified.json"


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> None:
    doubles.register(monkeypatch, **HOSTILE)


def _cert(root: Path, defense: str) -> dict[str, Any]:
    return json.loads((root / "mnist-5k" / "quick" / defense / "certified.json").read_text())


def _cell(root: Path, defense: str, name: str) -> dict[str, Any]:
    return json.loads((root / "mnist-5k" / "quick" / defense / f"{name}.json").read_text())


def test_a_certificate_the_runner_can_recompute_is_its_own_not_the_claim(
    hostile: None, tmp_path: Path, rb_home: Path, mnist_test: data.Dataset
) -> None:
    runner = small_runner(tmp_path, rb_home)
    board = runner.run(["pgd"], ["overclaim"]).set_index("defense")
    cert, pgd = _cert(tmp_path, "overclaim"), _cell(tmp_path, "overclaim", "pgd")
    assert cert["verified_by"] == "ibp" and cert["column"] == "certified_acc"
    assert cert["claimed_acc"] == 1.0 and all(cert["samples"]["claimed"])  # its word, kept
    model = runner.model(instantiate(defense_class("overclaim"), "quick"))
    own = interval_bounds.certify(model, mnist_test.x[:40], mnist_test.y[:40], 0.3)
    assert cert["samples"]["certified"] == own.tolist()  # the runner's bounds, not the claim
    assert cert["certified_acc"] <= pgd["robust_acc"] < 0.5  # an undefended CNN at eps 0.3
    assert board.loc["overclaim", "certified_acc"] == pytest.approx(cert["certified_acc"])
    assert "claimed_certified_acc" not in board.columns
    assert "unverified-certificate" not in str(board.loc["overclaim", "flags"])


def test_a_certificate_the_runner_cannot_recompute_is_shown_as_claimed_and_flagged(
    hostile: None, tmp_path: Path, rb_home: Path
) -> None:
    board = small_runner(tmp_path, rb_home).run(["pgd-l2"], ["opaque-liar"]).set_index("defense")
    cert = _cert(tmp_path, "opaque-liar")
    assert cert["verified_by"] is None and cert["column"] == "claimed_certified_acc"
    assert "Opaque" in cert["unverifiable"]
    assert cert["samples"]["certified"] == cert["samples"]["clean_correct"]  # its claim
    assert "certified_acc" not in board.columns  # never merged into the verified column
    claimed = board.loc["opaque-liar", "claimed_certified_acc"]
    assert claimed == pytest.approx(cert["certified_acc"]) and claimed > 0.5
    assert "unverified-certificate" in board.loc["opaque-liar", "flags"].split(";")


def test_a_claimed_certificate_an_attack_broke_still_fails_the_run(
    hostile: None, tmp_path: Path, rb_home: Path
) -> None:
    with pytest.raises(RBError, match="unsound certificate: opaque-liar x pgd"):
        small_runner(tmp_path, rb_home).run(["pgd"], ["opaque-liar"])


def test_the_honest_ibp_certificate_is_verified_and_unchanged(
    tmp_path: Path, rb_home: Path
) -> None:
    """The built-in ibp certifies with the very bounds the runner recomputes: its claim and the
    runner's flags agree, and they are the committed quick grid's flags on the same weights."""
    small_runner(tmp_path, rb_home).run(["pgd"], ["ibp"])
    cert = _cert(tmp_path, "ibp")
    assert cert["verified_by"] == "ibp" and cert["column"] == "certified_acc"
    assert cert["samples"]["claimed"] == cert["samples"]["certified"]
    assert cert["certified_acc"] > 0.1  # a certificate that certifies something
    committed = json.loads(COMMITTED.read_text())
    assert cert["weights_sha256"] == committed["weights_sha256"]  # the zoo's weights
    assert cert["samples"]["certified"] == committed["samples"]["certified"][:40]
    # A file that predates verification (nothing recomputed it) is shown as claimed, flagged.
    old = {k: v for k, v in cert.items() if k not in ("verified_by", "claimed_acc")}
    old["samples"] = {k: v for k, v in cert["samples"].items() if k != "claimed"}
    (tmp_path / "mnist-5k" / "quick" / "ibp" / "certified.json").write_text(json.dumps(seal(old)))
    board = leaderboard.build(tmp_path / "mnist-5k" / "quick").set_index("defense")
    assert "certified_acc" not in board.columns
    assert board.loc["ibp", "claimed_certified_acc"] == pytest.approx(cert["certified_acc"])
    assert "unverified-certificate" in board.loc["ibp", "flags"].split(";")
