"""The model zoo: the committed leaderboards' weights ship with the suite. A run with an empty
RB_HOME trains nothing and reproduces a committed cell; a tampered zoo file is refused; other
weights of one config (`--retrain`) make a row of their own; `rb check` reruns a chosen subset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_model

from robustbench_lite.cli.main import main
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.running.check.rerun import check
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.files import file_sha256
from robustbench_lite.store.models import ModelCache
from robustbench_lite.store.zoo import Zoo, zoo_folder

ROOT = Path(__file__).resolve().parents[2]
STANDARD = ROOT / "results" / "mnist-5k" / "standard"
QUICK = ROOT / "results" / "mnist-5k" / "quick"
#: A cheap cell of the committed standard grid (the grid of 775 transforms, labels only).
CHEAP = ("ibp", "spatial")


def _samples(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["samples"]


def test_an_empty_home_trains_nothing_and_reproduces_a_committed_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("RB_HOME", str(home))
    defense, attack = CHEAP
    argv = ["-q", "run", "-a", attack, "-d", defense, "--profile", "standard",
            "--results", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    assert not (home / "models").exists()  # nothing trained, nothing cached
    rerun = tmp_path / "r" / "mnist-5k" / "standard" / defense / f"{attack}.json"
    committed = STANDARD / defense / f"{attack}.json"
    assert (
        json.loads(rerun.read_text())["weights_sha256"]
        == json.loads(committed.read_text())["weights_sha256"]
    )
    again, before = _samples(rerun), _samples(committed)
    outside = again.pop("outside")  # out-of-ball counts are newer than the committed cells
    assert again == before
    assert outside == before.get("outside", [0] * len(outside))  # spatial stays in [0, 1]


def test_a_tampered_zoo_file_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    copy = tmp_path / "zoo"
    shutil.copytree(zoo_folder(), copy)
    entry = next(e for e in Zoo(copy).entries().values() if e.defense == "none")
    raw = bytearray((copy / entry.file).read_bytes())
    raw[-5] ^= 0x01  # one bit of one weight
    (copy / entry.file).write_bytes(bytes(raw))
    monkeypatch.setenv("RB_ZOO", str(copy))
    monkeypatch.setenv("RB_HOME", str(tmp_path / "home"))
    argv = ["run", "-a", "pgd", "-d", "none", "--profile", entry.profile, "--n", "10",
            "--results", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fails its pinned SHA-256" in err and entry.file in err


def test_other_weights_of_a_zoo_config_are_a_row_of_their_own(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "home")
    common = {"profile": "quick", "n": 20, "quiet": True, "results_dir": tmp_path, "cache": cache}
    Runner(**common).run(["pgd", "pgd-l2"], ["none"])  # the zoo's weights
    retrained = Runner(**common, retrain=True)
    model = retrained.model(instantiate(defense_class("none"), "quick"))  # trained, cached
    (weights,) = cache.root.glob("none-*.safetensors")
    with torch.no_grad():
        next(model.parameters()).mul_(1.001)  # a retraining a few bits away
    save_model(model.cpu(), str(weights))
    meta = weights.with_suffix(".json")
    stored = json.loads(meta.read_text())
    stored["weights_sha256"] = file_sha256(weights)
    meta.write_text(json.dumps(stored))
    board = Runner(**common, retrain=True).run(["pgd"], ["none"])  # pgd-l2 keeps the zoo's
    labels = sorted(board["defense"])
    assert len(labels) == 2 and all(label.startswith("none@") for label in labels)
    # The row on other weights says the zoo cannot re-check it; the zoo's own row does not.
    zoo_sha = Zoo().get(retrained.plan.model_key(instantiate(defense_class("none"), "quick"))[0])
    assert zoo_sha is not None
    flags = dict(zip(board["defense"], board["flags"].fillna(""), strict=True))
    shipped = f"none@{zoo_sha.sha256[:8]}"
    assert "weights-not-shipped" not in flags[shipped]
    (other,) = set(flags) - {shipped}
    assert "weights-not-shipped" in flags[other]


def test_rb_check_reruns_a_chosen_subset_on_the_zoo(tmp_path: Path) -> None:
    shutil.copytree(QUICK, tmp_path / "mnist-5k" / "quick")
    report = check(
        tmp_path / "mnist-5k" / "quick" / "leaderboard.csv", attacks=["pgd"], defenses=["none"]
    )
    assert not report.failed, report.render()
    assert [f.cell for f in report.flips] == ["none/pgd", "none/clean_acc"]
    assert all(f.fell == f.rose == 0 for f in report.flips)  # on its own weights: identical
    assert [c.cell for c in report.changes] == ["none/clean_acc", "none/pgd"]  # no partial worst


def test_rb_check_of_a_plain_cell_reruns_it_alone(tmp_path: Path) -> None:
    """A `@no-bpda` cell reruns without its BPDA twin (and the twin without it): each is one
    attack's run, not two."""
    shutil.copytree(QUICK, tmp_path / "mnist-5k" / "quick")
    work = tmp_path / "rerun"
    report = check(
        tmp_path / "mnist-5k" / "quick" / "leaderboard.csv",
        attacks=["pgd@no-bpda"],
        defenses=["bit-depth"],
        workdir=work,
    )
    assert not report.failed, report.render()
    assert [f.cell for f in report.flips] == ["bit-depth/pgd@no-bpda", "bit-depth/clean_acc"]
    assert sorted(p.name for p in work.rglob("pgd*.json")) == ["pgd@no-bpda.json"]
