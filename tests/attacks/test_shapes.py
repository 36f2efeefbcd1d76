"""Every attack on other shapes than 28x28 digits: CIFAR's 3x32x32 with 10 classes and a
non-square 3x40x48 with 7 (a 28, 784, 10 or square assumption fails here), through the
contract and through the runner end to end."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robustbench_lite.attacks.autoattack import AutoAttack
from robustbench_lite.protocol.contracts import Knowledge
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.registry import (
    attack_class,
    attack_names,
    defense_class,
    instantiate,
)
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.testing import check_attack
from tests._helpers.fronts import fronted
from tests._helpers.synthetic import SHAPES, synthetic


@pytest.fixture(scope="module", params=SHAPES, ids=[s[0] for s in SHAPES])
def trained(request: Any, quick_runner: Runner) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    """The undefended quick model of a synthetic dataset, and test images it gets right."""
    source = synthetic(*request.param)
    runner = Runner(dataset=source, profile="quick", quiet=True, cache=quick_runner.cache)
    model = runner.model(instantiate(defense_class("none"), "quick"))
    test = source.load("test")
    keep = predict(model, test.x) == test.y
    assert int(keep.sum()) >= 20, "the synthetic data should be easy to learn"
    return source, model, test.x[keep][:12], test.y[keep][:12]


@pytest.mark.parametrize("name", attack_names())
def test_every_attack_serves_any_shape(name: str, trained: Any) -> None:
    """The contract on other shapes; a white-box attack differentiates a zero-gradient front
    step through its BPDA approximation here (tests/protocol/test_bpda.py)."""
    source, model, x, y = trained
    if issubclass(attack_class(name), AutoAttack):
        pytest.skip("a chain of registered attacks, each run here on every shape")
    attack = instantiate(attack_class(name), "quick")
    if attack.unsupported(source.shape, source.num_classes):
        pytest.skip(attack.unsupported(source.shape, source.num_classes))
    if attack.knowledge == Knowledge.GRADIENT:  # through BPDA (Athalye et al. 2018) as well
        model = fronted(model, bpda=True)
    check_attack(attack_class(name), model, x, y, dataset=source, budget=60, min_success=0.0)


@pytest.mark.bench
def test_the_runner_runs_every_attack_on_a_colour_non_square_set(
    quick_runner: Runner, tmp_path: Any
) -> None:
    source = synthetic(*SHAPES[1])
    runner = Runner(
        dataset=source, profile="quick", n=12, budget=40, results_dir=tmp_path, quiet=True,
        cache=quick_runner.cache,
    )  # fmt: skip
    board = runner.run(["all"], ["none"])
    row = board.set_index("defense").loc["none"]
    assert row["n"] == 12 and 0 <= row["worst_linf"] <= row["clean_acc"]
    assert not runner.failed
