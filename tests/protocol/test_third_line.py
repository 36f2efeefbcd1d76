"""The protocol's third line (issue 37), tried where third-party code and received files meet it:
zoo manifests that name paths, a swapped zoo, queries that launder the indicators, and a
label-based attack that reads the target's weights from disk. Each is refused or made harmless,
and the honest cells beside it keep their numbers."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from robustbench_lite.report import ranking
from robustbench_lite.report.flags import evidence, row_flags
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store import cell_record
from robustbench_lite.store.models import ModelCache
from robustbench_lite.store.zoo import MANIFEST, ZOO, Zoo, ZooEntry
from tests._helpers import doubles, third_party
from tests._helpers.records import clean_diagnostics, fake_cell
from tests.protocol.hostile_cells import small_runner


def _shipped(defense: str, profile: str = "quick") -> ZooEntry:
    return next(
        e for e in Zoo(ZOO).entries().values() if (e.defense, e.profile) == (defense, profile)
    )


def _zoo_with(folder: Path, entries: list[ZooEntry]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"models": [asdict(e) for e in entries]}, indent=1)
    (folder / MANIFEST).write_text(text)
    return folder


# -- zoo files are names, not paths ---------------------------------------------------------------


@pytest.mark.parametrize("file", ["../victim.safetensors", "/ABS/victim.safetensors", "sub/x"])
def test_a_manifest_path_is_refused_and_nothing_outside_is_touched(
    tmp_path: Path, file: str
) -> None:
    victim = tmp_path / "victim.safetensors"
    victim.write_bytes(b"a cell of another folder")
    file = file.replace("/ABS", str(tmp_path))
    entry = _shipped("none")
    zoo = Zoo(_zoo_with(tmp_path / "zoo", [ZooEntry(**{**asdict(entry), "file": file})]))
    with pytest.raises(RBError, match="a zoo file is a bare name"):
        zoo.replace(set())  # what `rb zoo` does with entries it does not rebuild
    with pytest.raises(RBError, match="a zoo file is a bare name"):
        zoo.load(nn.Linear(1, 1), zoo.entries()[entry.key])
    assert victim.read_bytes() == b"a cell of another folder"


def test_a_received_zoo_with_a_path_stops_rb_run_with_one_line(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    victim = tmp_path / "leaderboard.csv"
    victim.write_text("keep me\n")
    entry = ZooEntry(**{**asdict(_shipped("none")), "file": "../leaderboard.csv"})
    monkeypatch.setenv("RB_ZOO", str(_zoo_with(tmp_path / "zoo", [entry])))
    code = main(["--quiet", "run", "-a", "pgd", "-d", "none", "--profile", "quick",
                 "--n", "5", "--results", str(tmp_path / "results")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bare name" in err[0], err
    assert victim.read_text() == "keep me\n"


def test_rb_zoo_removes_only_files_it_wrote(tmp_path: Path) -> None:
    zoo = Zoo(tmp_path / "zoo")
    mine = zoo.add(nn.Linear(2, 2), defense="mine", dataset="d", profile="quick", key="a" * 64,
                   config={}, train_time_s=None, threads=1)  # fmt: skip
    other = zoo.add(nn.Linear(2, 2), defense="other", dataset="d", profile="quick",
                    key="b" * 64, config={}, train_time_s=None, threads=1)  # fmt: skip
    (zoo.folder / other.file).write_bytes(b"the user's own file under that name")
    gone = zoo.replace(set())
    assert gone == [zoo.folder / mine.file]
    assert (zoo.folder / other.file).read_bytes() == b"the user's own file under that name"
    assert zoo.entries() == {}


# -- the shipped zoo is the reference --------------------------------------------------------------


def test_a_swapped_zoo_is_flagged_whatever_rb_zoo_says(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, swap = _shipped("pgd-at"), _shipped("alp")  # the same architecture
    folder = tmp_path / "zoo"
    folder.mkdir()
    shutil.copy(ZOO / swap.file, folder / swap.file)
    forged = ZooEntry(**{**asdict(target), "file": swap.file, "sha256": swap.sha256})
    _zoo_with(folder, [forged])
    monkeypatch.setenv("RB_ZOO", str(folder))
    small_runner(tmp_path / "forged", rb_home, n=20).run(["pgd"], ["pgd-at"])
    monkeypatch.delenv("RB_ZOO")
    small_runner(tmp_path / "honest", rb_home, n=20).run(["pgd"], ["pgd-at"])
    forged_cells = cell_record.load(tmp_path / "forged" / "mnist-5k" / "quick")
    honest_cells = cell_record.load(tmp_path / "honest" / "mnist-5k" / "quick")
    manifest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    assert forged_cells[0].zoo_sha256 == manifest
    assert forged_cells[0].weights_sha256 == swap.sha256
    shipped = hashlib.sha256((ZOO / MANIFEST).read_bytes()).hexdigest()
    assert honest_cells[0].zoo_sha256 == shipped
    assert "weights-not-shipped" in row_flags(forged_cells, clean_diagnostics())
    assert "weights-not-shipped" not in row_flags(honest_cells, clean_diagnostics())


def test_weights_from_another_zoo_are_flagged_on_any_dataset() -> None:
    cell = fake_cell(cell="pgd", defense="mine", dataset="my-data", profile="quick",
                     weights_sha256="f" * 64, zoo_sha256="e" * 64)  # fmt: skip
    from robustbench_lite.report.weights import unshipped

    assert [code for code, _ in unshipped([cell])] == ["other-zoo"]
    assert unshipped([replace(cell, zoo_sha256="none")]) == []
    assert unshipped([replace(cell, weights_sha256=_shipped("none").sha256)]) == []


# -- indicators from in-ball queries only ----------------------------------------------------------


@pytest.fixture(scope="module")
def laundered(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("launder")
    with pytest.MonkeyPatch.context() as mp:
        doubles.register(mp, **{
            "broken-tiny": "tests._helpers.broken_attacks:TinyStep",
            "launder-tiny": "tests._helpers.third_party:LaunderTiny",
            "launder-still": "tests._helpers.third_party:LaunderStill",
        })  # fmt: skip
        small_runner(root, rb_home, n=60).run(["broken-tiny", "launder-tiny", "launder-still"],
                                              ["none"])  # fmt: skip
    return {c.attack: c for c in cell_record.load(root / "mnist-5k" / "quick")}


def test_one_query_outside_the_ball_does_not_launder_incomplete(laundered: dict) -> None:
    plain, dirty = laundered["broken-tiny"], laundered["launder-tiny"]
    assert abs(dirty.robust_acc - plain.robust_acc) < 0.1  # other random starts
    assert plain.indicator_shares["incomplete"] > 0.9
    assert dirty.indicator_shares["incomplete"] > 0.9  # was 0.0 when the 1 - x query counted
    assert plain.out_of_ball == 0.0
    assert dirty.out_of_ball == pytest.approx(1 / 21)  # one of 21 queries per sample


def test_one_query_outside_the_ball_does_not_launder_non_converging(laundered: dict) -> None:
    still = laundered["launder-still"]
    assert still.indicator_shares["non_converging"] == 1.0
    assert still.out_of_ball == pytest.approx(1 / 11)
    assert "non-converging" in row_flags([still], clean_diagnostics())


# -- implausible efficiency ------------------------------------------------------------------------


def test_a_labels_attack_reading_the_zoo_is_flagged_and_ranked_apart(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    third_party.StolenWeights.home[:] = [rb_home]
    doubles.register(monkeypatch, **{
        "broken-first": "tests._helpers.broken_attacks:FirstIterate",
        "stolen-weights": "tests._helpers.third_party:StolenWeights",
    })  # fmt: skip
    runner = Runner(profile="quick", n=60, results_dir=tmp_path, quiet=True,
                    cache=ModelCache(rb_home))  # fmt: skip
    runner.run(["broken-first", "stolen-weights", "nes"], ["none"])
    grid = tmp_path / "mnist-5k" / "quick"
    cells = cell_record.load(grid)
    stolen = next(c for c in cells if c.attack == "stolen-weights")
    assert stolen.queries.median_success == 1 and stolen.robust_acc < 0.1
    masking = [d for code, d in evidence(cells, clean_diagnostics()) if code == "masking"]
    assert masking and not any("stolen-weights" in d for d in masking)  # nes's stays
    frame = ranking.table(grid).set_index("attack")
    assert frame.loc["stolen-weights", "flags"] == "implausible-efficiency"
    assert frame.loc["stolen-weights", "origin"] == "third-party"
    assert frame.loc["nes", "flags"] == "" and frame.loc["nes", "origin"] == "built-in"
    scores = ranking.scores(ranking.table(grid))
    linf = list(scores[scores["threat_model"] == "linf"]["attack"])
    assert linf.index("nes") < linf.index("stolen-weights")  # built-ins rank first
