"""The protocol's second line, continued: names never become paths or terminal escapes, no
command writes over or removes results, and a result file is trusted only as far as it verifies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import registry
from robustbench_lite.report import leaderboard, tables
from robustbench_lite.store.files import seal
from tests._helpers import doubles, hostile
from tests.protocol.hostile_cells import cell, small_runner


@pytest.mark.parametrize("name", ["../../../../escaped-attack", "\x1b[2Jevil", "a/b"])
def test_a_plugin_name_must_be_an_identifier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys, caplog, name: str
) -> None:
    doubles.register(monkeypatch, **{name: "tests._helpers.hostile:ReachModel"})
    monkeypatch.setattr(registry, "_warned", set())
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0  # the plugin is disabled, the others listed
    assert "attack   pgd" in capsys.readouterr().out
    (warned,) = [r.getMessage() for r in caplog.records if "registers" in r.getMessage()]
    assert "\x1b" not in warned and "robustbench_lite.attacks" in warned and "disabled" in warned
    assert name not in registry.attack_names()
    assert main(["-q", "run", "-a", name, "-d", "none", "--profile", "quick", "--n", "10",
                 "--results", str(tmp_path / "r")]) == 2  # fmt: skip
    assert "unknown attack" in capsys.readouterr().err
    assert not list(tmp_path.parent.glob("escaped*")) and not (tmp_path / "r").exists()


def test_control_characters_never_reach_the_terminal(capsys) -> None:
    assert main(["run", "-a", "spatial", "-d", "none", "--set", "spatial.mode=\x1b[2J\x07x"]) == 2
    err = capsys.readouterr().err
    assert "mode must be one of" in err and "\x1b" not in err and "\x07" not in err


def test_rb_site_never_writes_over_or_removes_results(tmp_path: Path, rb_home: Path) -> None:
    small_runner(tmp_path / "results", rb_home, n=10).run(["pgd"], ["none"])
    before = sorted(p for p in (tmp_path / "results").rglob("*") if p.is_file())
    for out in (tmp_path / "results", tmp_path / "results" / "mnist-5k", tmp_path):
        assert main(["site", "--results", str(tmp_path / "results"), "--out", str(out)]) == 2
    assert sorted(p for p in (tmp_path / "results").rglob("*") if p.is_file()) == before
    site = tmp_path / "site"
    (site / "mnist-5k" / "quick").mkdir(parents=True)
    mine = site / "mnist-5k" / "quick" / "my-notes.png"
    mine.write_bytes(b"not the site's")
    for _ in range(2):  # a rebuild removes what the last build wrote, and nothing else
        assert main(["-q", "site", "--results", str(tmp_path / "results"), "--out", str(site)]) == 0
    assert mine.read_bytes() == b"not the site's"
    assert (site / "mnist-5k" / "quick" / "none.html").is_file()


def _edit(path: Path, change: Any) -> None:
    """Change a sealed record and re-seal it: the content hash passes, the content does not."""
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(seal(record)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(robust_acc=0.9), "its robust_acc 0.9 contradicts its per-sample"),
        (lambda r: r.update(clean_acc="0.95"), "its clean_acc '0.95' contradicts"),
        (lambda r: r["samples"]["robust"].pop(), "its per-sample 'robust' is not a list of 40"),
        (
            lambda r: r["samples"]["queries"].__setitem__(0, "3"),
            "its per-sample 'queries' holds entries of",
        ),
    ],
)
def test_a_cell_that_contradicts_itself_is_refused(
    tmp_path: Path, rb_home: Path, capsys, change: Any, message: str
) -> None:
    small_runner(tmp_path, rb_home).run(["pgd"], ["none"])
    folder = tmp_path / "mnist-5k" / "quick"
    _edit(folder / "none" / "pgd.json", change)
    with pytest.raises(RBError, match=f"refusing result file .*pgd.json: {message}"):
        leaderboard.build(folder)
    assert main(["-q", "check", "--baseline", str(folder / "leaderboard.csv")]) == 2
    err = capsys.readouterr().err
    assert message.split(" ")[1] in err and err.count("\n") == 1


def test_missing_or_edited_diagnostics_are_a_flag_and_stray_files_a_warning(
    tmp_path: Path, rb_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    small_runner(tmp_path, rb_home).run(["pgd"], ["none"])
    folder = tmp_path / "mnist-5k" / "quick"
    diagnostics = folder / "none" / "diagnostics.json"
    assert "no-diagnostics" not in leaderboard.build(folder).loc[0, "flags"]
    (folder / "none" / "notes.json").write_text('{"my": "notes"}')
    _edit(diagnostics, lambda r: r.update(unbounded_success=0.5))  # numbers without their flag
    assert "no-diagnostics" in leaderboard.build(folder).loc[0, "flags"]
    assert "notes.json is not a result file rb wrote: ignored" in caplog.text
    diagnostics.unlink()
    assert "no-diagnostics" in leaderboard.build(folder).loc[0, "flags"]


def test_overrides_are_visible_in_the_cell_name_and_footnoted(
    tmp_path: Path, rb_home: Path
) -> None:
    board = small_runner(tmp_path, rb_home, n=20, budget=1, settings={"pgd": {"steps": 1}}).run(
        ["square", "pgd"], ["none"]
    )
    assert {"square@budget=1", "pgd@steps=1"} <= set(board.columns)
    assert "square" not in board.columns and "pgd" not in board.columns
    assert tables.OVERRIDE_NOTE in tables.to_markdown(board)
    plain = small_runner(tmp_path, rb_home, n=20, budget=None).run(["square"], ["none"])
    assert plain.loc[0, "square"] < plain.loc[0, "square@budget=1"]


def test_a_success_without_queries_is_flagged(
    more: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    honest_board = small_runner(tmp_path, rb_home, save_adv=True).run(["pgd"], ["none"])
    assert "zero-query-success" not in honest_board.loc[0, "flags"]
    folder = tmp_path / "mnist-5k" / "quick"
    x_adv = load_file(str(folder / "none" / "pgd.adv.safetensors"))["x_adv"]
    correct = torch.tensor(cell(tmp_path, "pgd")["samples"]["clean_correct"])
    hostile.Cheat.sheet = x_adv[correct]
    board = small_runner(tmp_path, rb_home).run(["hostile-cheat"], ["none"])
    record = cell(tmp_path, "hostile-cheat@budget=50")
    assert record["robust_acc"] < 0.1 and set(record["samples"]["queries"]) == {0}
    assert "zero-query-success" in board.loc[0, "flags"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eps", "spatial:1e308", "-a", "spatial"], "spatial eps must be at most 1"),
        (["--eps", "l2:1e308", "-a", "pgd-l2"], "l2 eps must be at most 28, the diameter"),
        (["-a", "pgd", "--set", "steps=1e30"], "out of an integer's range"),
        (["-a", "pgd", "--set", "steps=1.5"], "expected an integer, got '1.5'"),
    ],
)
def test_budgets_beyond_the_threat_model_are_refused_up_front(
    tmp_path: Path, capsys, argv: list[str], message: str
) -> None:
    assert main(["run", "-d", "none", "--results", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "mnist-5k").exists()
