"""One test per protocol guarantee that deleting its code would otherwise leave unnoticed: the EOT
wrap, the majority vote, the per-sample worst case, impossible pairs, seeds, checkpoints, the
EOT budget split, one model per row, and the certificate invariant."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_model

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.report import leaderboard
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.files import config_hash, file_sha256, seal
from robustbench_lite.store.models import ModelCache
from tests._helpers import doubles
from tests._helpers.doubles import resummarized

DOUBLES = {
    "noisy": "tests._helpers.doubles:Noisy",
    "labels-only": "tests._helpers.doubles:LabelsOnly",
    "liar": "tests._helpers.doubles:Liar",
    "probe": "tests._helpers.doubles:Probe",
}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    doubles.register(monkeypatch, **DOUBLES)


def _runner(root: Path, rb_home: Path, **kwargs: Any) -> Runner:
    settings = {"profile": "quick", "n": 40, "quiet": True, "cache": ModelCache(rb_home), **kwargs}
    return Runner(results_dir=root, **settings)


def _cell(root: Path, defense: str, name: str) -> dict[str, Any]:
    return json.loads((root / "mnist-5k" / "quick" / defense / f"{name}.json").read_text())


def _charged(record: dict[str, Any]) -> set[int]:
    """The distinct query counts of the attacked (clean-correct) samples."""
    samples = record["samples"]
    return {q for q, c in zip(samples["queries"], samples["clean_correct"], strict=True) if c}


def test_a_randomized_defense_is_attacked_through_eot(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    doubles.Probe.passes.clear()
    _runner(tmp_path, rb_home, budget=40).run(["probe"], ["noisy"])
    assert doubles.Probe.passes and set(doubles.Probe.passes) == {4}  # quick: m = 4 draws a query
    record = _cell(tmp_path, "noisy", "probe@budget=40")
    assert _charged(record) == {4}


def test_the_verdict_is_a_majority_over_fresh_draws(
    registered: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    _runner(tmp_path, rb_home, budget=40).run(["probe"], ["noisy"])
    record = _cell(tmp_path, "noisy", "probe@budget=40")
    # The probe changes nothing: every clean-correct sample stays robust under a majority of 25
    # draws, while a single draw would be noise for 30% of them.
    assert record["samples"]["robust"] == record["samples"]["clean_correct"]
    assert record["clean_acc"] >= 0.9


def test_eot_splits_the_budget_and_refuses_a_row_more(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    runner = _runner(tmp_path, rb_home, budget=20, settings={"probe": {"rows": 0}})
    runner.run(["probe"], ["noisy"])
    record = _cell(tmp_path, "noisy", "probe@budget=20@rows=0")
    assert _charged(record) == {20}  # told 20 // 4 = 5 rows, each charged 4 draws
    greedy = _runner(tmp_path / "b", rb_home, budget=20, settings={"probe": {"rows": -1}})
    with pytest.raises(RBError, match=r"queried sample .* 24 times, over its budget of 20"):
        greedy.run(["probe"], ["noisy"])


def test_worst_case_is_the_per_sample_minimum(tmp_path: Path, rb_home: Path) -> None:
    _runner(tmp_path, rb_home).run(["pgd-margin"], ["none"])
    cell_dir = tmp_path / "mnist-5k" / "quick"
    source = json.loads((cell_dir / "none" / "pgd-margin.json").read_text())
    correct = [i for i, c in enumerate(source["samples"]["clean_correct"]) if c]
    for name, broken in (("pgd", correct[:5]), ("pgd-margin", correct[5:10])):
        record = {**source, "attack": name, "cell": name}
        robust = [
            bool(c) and i not in broken for i, c in enumerate(source["samples"]["clean_correct"])
        ]
        record["samples"] = {**source["samples"], "robust": robust}
        record.update(resummarized(record))
        record["config"] = {**source["config"], "attack": {"name": name, "config": {}}}
        record["config_hash"] = config_hash(record["config"])
        (cell_dir / "none" / f"{name}.json").write_text(json.dumps(seal(record)))
    row = leaderboard.build(cell_dir).iloc[0]
    assert row["pgd"] == row["pgd-margin"] == pytest.approx((len(correct) - 5) / 40)
    assert row["worst_linf"] == pytest.approx((len(correct) - 10) / 40)


def test_impossible_pairs_are_skipped_up_front(
    registered: None, tmp_path: Path, rb_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _runner(tmp_path, rb_home, n=10).run(["pgd", "spatial"], ["labels-only"])
    folder = tmp_path / "mnist-5k" / "quick" / "labels-only"
    assert (folder / "spatial.json").is_file() and not (folder / "pgd.json").exists()
    assert "skipping labels-only x pgd: pgd needs gradient access" in caplog.text


def test_other_seed_other_weights(tmp_path: Path, rb_home: Path) -> None:
    defense = instantiate(defense_class("none"), "quick")
    a = _runner(tmp_path, rb_home).model(defense)
    b = _runner(tmp_path, rb_home, seed=1).model(defense)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert not all(torch.equal(p, q) for p, q in pairs)


class _Planted:
    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(_Planted.marker),))

    marker = ""


@pytest.mark.parametrize("planted", ["pickle", "zeros"])
def test_a_planted_checkpoint_is_refused_and_runs_no_code(
    tmp_path: Path, rb_home: Path, planted: str
) -> None:
    cache = ModelCache(tmp_path / "home")
    runner = _runner(tmp_path, rb_home, cache=cache, settings={"none": {"epochs": 1}})
    defense = instantiate(defense_class("none"), "quick", {"epochs": 1})
    model = runner.model(defense)
    (weights,) = cache.root.glob("none-*.safetensors")
    _Planted.marker = str(tmp_path / "ran")
    if planted == "pickle":
        weights.write_bytes(pickle.dumps({"weights": _Planted()}))
    else:  # well-formed safetensors with other weights
        for p in model.parameters():
            p.data.zero_()
        save_model(model, str(weights))
    with pytest.raises(RBError, match=r"corrupt checkpoint .*none-.*\.safetensors"):
        runner.model(defense)
    assert not (tmp_path / "ran").exists()


def test_one_model_per_leaderboard_row(tmp_path: Path, rb_home: Path) -> None:
    _runner(tmp_path, rb_home).run(["pgd"], ["none"])
    board = _runner(tmp_path, rb_home, settings={"none": {"epochs": 1}}).run(["pgd-l2"], ["none"])
    labels = sorted(board["defense"])
    assert len(labels) == 2 and all(label.startswith("none@") for label in labels)
    by_label = board.set_index("defense")
    assert sorted(by_label["worst_linf"].isna()) == [False, True]
    assert sorted(by_label["worst_l2"].isna()) == [False, True]


def test_an_unsound_certificate_fails_the_run(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    with pytest.raises(
        RBError, match="soundness invariant broken: unsound certificate: liar x pgd"
    ):
        _runner(tmp_path, rb_home).run(["pgd"], ["liar"])


def test_other_weights_of_one_config_recompute_and_never_share_a_row(
    no_zoo: None, tmp_path: Path, rb_home: Path
) -> None:
    """A retraining that differs in the last bits (other threads, another machine) is another
    model: its cells are recomputed, and cells of the old weights keep a row of their own."""
    cache = ModelCache(tmp_path / "home")
    _runner(tmp_path, rb_home, cache=cache, n=20).run(["pgd", "pgd-l2"], ["none"])
    (weights,) = cache.root.glob("none-*.safetensors")
    meta = weights.with_suffix(".json")
    defense = instantiate(defense_class("none"), "quick")
    model = _runner(tmp_path, rb_home, cache=cache).model(defense)
    with torch.no_grad():
        next(model.parameters()).mul_(1.001)  # a retraining a few bits away
    save_model(model, str(weights))
    stored = json.loads(meta.read_text())
    stored["weights_sha256"] = file_sha256(weights)
    meta.write_text(json.dumps(stored))
    again = _runner(tmp_path, rb_home, cache=cache, n=20)
    board = again.run(["pgd"], ["none"])
    assert [p.name for p in again.computed] == ["pgd.json"] and again.reused == []
    assert _cell(tmp_path, "none", "pgd")["weights_sha256"] == stored["weights_sha256"]
    labels = sorted(board["defense"])
    assert len(labels) == 2 and all(label.startswith("none@") for label in labels)
