"""Retracted results and plugin revisions: a result made by code since fixed, under a config
that cannot tell, is recomputed, never reused; a fix's `revision` keys new results apart."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.protocol.registry import attack_class, defense_class, instantiate
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store import retracted
from robustbench_lite.store.files import config_hash

QUICK = Path(__file__).resolve().parents[2] / "results" / "mnist-5k" / "quick"


def _retract_none_pgd(monkeypatch: pytest.MonkeyPatch) -> str:
    """Retract the committed quick cell none/pgd (a fix a test pretends was made); its hash."""
    old: str = json.loads((QUICK / "none" / "pgd.json").read_text())["content_hash"]
    fix = retracted.Retraction(reason="made before a test's fix", content_hashes=frozenset({old}))
    monkeypatch.setattr(retracted, "RETRACTIONS", (fix,))
    return old


def _rb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_every_retraction_names_content_hashes_and_a_reason() -> None:
    for retraction in retracted.RETRACTIONS:
        assert retraction.reason and retraction.content_hashes
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in retraction.content_hashes)


def test_a_retracted_cell_is_recomputed_not_reused_and_its_successor_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its config hash still matches, so only the retraction list can tell: the dry run names
    it with the reason, the run recomputes it, and the new file is reused from then on."""
    grid = tmp_path / "res" / "mnist-5k" / "quick"
    shutil.copytree(QUICK, grid)
    cell = grid / "none" / "pgd.json"
    old = _retract_none_pgd(monkeypatch)
    args = ["run", "-a", "pgd", "-d", "none", "--profile", "quick", "--quiet"]
    args += ["--results", str(tmp_path / "res")]
    code, out = _rb(capsys, *args, "--dry-run")
    assert code == 0 and out.startswith("Would compute 1 cell under ")
    assert out.splitlines()[-1].split(None, 1) == [
        "none/pgd",
        "retracted: made before a test's fix",
    ]
    code, _ = _rb(capsys, *args)
    assert code == 0
    new = json.loads(cell.read_text())
    committed = json.loads((QUICK / "none" / "pgd.json").read_text())
    assert new["content_hash"] != old and new["config_hash"] == committed["config_hash"]
    code, out = _rb(capsys, *args, "--dry-run")
    assert code == 0 and out.startswith("Would compute 0 cells") and "and reuse 1 " in out


def test_a_revision_keys_new_cells_and_zero_keys_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """At revision 0 a cell's config is what it was before revisions existed (committed cells
    keep their hashes); a fix's bump to an attack, a chain's member or a defense moves it."""
    plan = Runner(profile="quick", quiet=True).plan
    none = instantiate(defense_class("none"), "quick")
    pgd = instantiate(attack_class("pgd"), "quick")
    chain = instantiate(attack_class("autoattack"), "quick")
    config = plan.cell_config(none, pgd, 200)
    assert "revision" not in config["attack"] and "revision" not in config["defense"]
    committed = json.loads((QUICK / "none" / "pgd.json").read_text())
    assert config_hash(config) == committed["config_hash"]
    chained = config_hash(plan.cell_config(none, chain, 200))
    model = plan.model_key(none)[0]

    monkeypatch.setattr(attack_class("apgd"), "revision", 1)  # a fix to a chain's member
    assert config_hash(plan.cell_config(none, chain, 200)) != chained
    assert config_hash(plan.cell_config(none, pgd, 200)) == committed["config_hash"]
    monkeypatch.setattr(type(pgd), "revision", 2)
    bumped = plan.cell_config(none, pgd, 200)
    assert bumped["attack"]["revision"] == 2 and config_hash(bumped) != committed["config_hash"]
    monkeypatch.setattr(type(none), "revision", 1)  # a fix to how a defense trains
    assert plan.model_key(none)[0] != model


def test_a_row_holding_a_retracted_cell_is_flagged_until_it_is_rerun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from robustbench_lite.report.flags import evidence
    from robustbench_lite.store.cell_record import read

    cells = [read(QUICK / "none" / name) for name in ("pgd.json", "square.json")]
    assert not [code for code, _ in evidence(cells, None) if code == "retracted-cell"]
    _retract_none_pgd(monkeypatch)
    found = [why for code, why in evidence(cells, None) if code == "retracted-cell"]
    assert found == ["pgd: retracted: made before a test's fix"]
