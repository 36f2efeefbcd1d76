"""Hostile plugins against the protocol's first line: each is refused or harmless, and an honest
cell run beside them is unchanged. Plugins are registered through entry points, as a third
party's are (tests/protocol/hostile_cells.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.evaluate import predict
from tests._helpers import hostile
from tests.protocol.hostile_cells import cell, honest_again, small_runner


def test_the_oracle_offers_no_model_and_no_counts(
    registered: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.ReachModel.seen.clear()
    small_runner(tmp_path, rb_home).run(["hostile-reach"], ["none"])
    assert hostile.ReachModel.seen and all(h == [] for h in hostile.ReachModel.seen)
    record = cell(tmp_path, "hostile-reach@budget=50")
    assert record["robust_acc"] == record["clean_acc"]  # nothing to run white-box steps through
    assert set(record["samples"]["queries"]) <= {0, 1}
    honest_again(tmp_path, rb_home, honest)


def test_a_scores_attack_cannot_take_gradients(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    with pytest.raises(RBError, match="hostile-grad declares scores access but asked for grad"):
        small_runner(tmp_path, rb_home).run(["hostile-grad"], ["none"])


def test_a_labels_attack_sees_labels_only(
    registered: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    hostile.LabelsPeek.seen.clear()
    small_runner(tmp_path, rb_home).run(["hostile-labels"], ["none"])
    (answer,) = hostile.LabelsPeek.seen
    assert not answer.requires_grad
    assert set(answer.unique().tolist()) <= {0.0, 1.0} and bool((answer.sum(dim=1) == 1).all())
    record = cell(tmp_path, "hostile-labels@budget=50")
    keep = torch.tensor(record["samples"]["clean_correct"])
    expected = predict(baseline, mnist_test.x[:40][keep])
    assert answer.argmax(dim=1).tolist() == expected.tolist()


@pytest.mark.parametrize("name", ["hostile-overspend", "hostile-roundrobin"])
def test_queries_over_budget_are_refused_at_the_call(
    registered: None, tmp_path: Path, rb_home: Path, name: str
) -> None:
    with pytest.raises(RBError, match=f"attack {name} queried sample .* over its budget of 50"):
        small_runner(tmp_path, rb_home).run([name], ["none"])
    assert not (tmp_path / "mnist-5k" / "quick" / "none" / f"{name}.json").exists()


@pytest.mark.parametrize("name", ["hostile-zero", "hostile-train"])
def test_tampering_with_the_attacked_model_refuses_the_cell(
    registered: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any], name: str
) -> None:
    with pytest.raises(RBError, match=f"attack {name} changed the model it attacked"):
        small_runner(tmp_path, rb_home).run([name, "pgd"], ["none"])
    assert not (tmp_path / "mnist-5k" / "quick" / "none" / f"{name}.json").exists()
    honest_again(tmp_path, rb_home, honest)


def test_overwriting_x_in_place_is_graded_against_the_runners_own_x(
    registered: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    small_runner(tmp_path, rb_home, save_adv=True).run(["hostile-inplace-x"], ["none"])
    record = cell(tmp_path, "hostile-inplace-x")
    path = tmp_path / "mnist-5k" / "quick" / "none" / "hostile-inplace-x.adv.safetensors"
    x_adv = load_file(str(path))["x_adv"]
    x, y = mnist_test.x[:40], mnist_test.y[:40]
    assert float((x_adv - x).abs().amax()) <= 0.3 + 1e-6  # projected around the real digits
    robust = (predict(baseline, x_adv) == y) & torch.tensor(record["samples"]["clean_correct"])
    assert record["samples"]["robust"] == robust.tolist()
    distance = [d for d in record["samples"]["distance"] if d is not None]
    assert distance and min(distance) > 0.0


def test_changing_y_in_place_changes_nothing(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    small_runner(tmp_path, rb_home).run(["hostile-inplace-y"], ["none"])
    record = cell(tmp_path, "hostile-inplace-y")
    assert record["samples"]["robust"] == record["samples"]["clean_correct"]


@pytest.mark.parametrize(
    "shape",
    ["3-tuple", "meta", "sparse", "list", "0-d extra", "list extra", "nan extra", "short extra"],
)
def test_a_malformed_return_is_a_clear_error(
    registered: None, tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    monkeypatch.setattr(hostile.Malformed, "shape", shape)
    with pytest.raises(RBError, match="attack hostile-malformed"):
        small_runner(tmp_path, rb_home).run(["hostile-malformed"], ["none"])
