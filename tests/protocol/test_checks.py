"""The checks on a user's model before anything attacks it: one model built to trip each."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

import robustbench_lite
from robustbench_lite.errors import RBError
from robustbench_lite.running.own.model import UserModel


class Wrap(nn.Module):
    """The trained baseline behind a transformation of its input or output."""

    def __init__(self, inner: nn.Module, kind: str) -> None:
        super().__init__()
        self.inner, self.kind = copy.deepcopy(inner), kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "round":  # piecewise constant input: zero input gradients everywhere
            return self.inner(torch.round(x))
        logits = self.inner(x)
        if self.kind == "nan":
            return logits * float("nan")
        if self.kind == "noise":
            return logits + 0.1 * torch.randn_like(logits)
        if self.kind == "constant":
            return 0 * logits
        if self.kind == "tuple":
            return (logits,)  # type: ignore[return-value]
        return logits


def _checked(model: nn.Module, randomized: bool = False) -> UserModel:
    user = UserModel(model, name="mine", randomized=randomized)
    user.run_checks("mnist-5k")
    return user


def test_a_good_model_passes_without_warnings(baseline: nn.Module) -> None:
    user = _checked(baseline)
    assert user.diagnostics.warnings == []
    assert user.diagnostics.clean_acc is not None and user.diagnostics.clean_acc > 0.8
    assert user.diagnostics.zero_grad_share == 0.0


def test_train_mode_dropout_is_switched_to_eval_with_a_warning(
    baseline: nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    model = nn.Sequential(nn.Dropout(0.3), copy.deepcopy(baseline)).train()
    with caplog.at_level(logging.WARNING):
        user = _checked(model)  # in train mode its outputs would change from call to call
    assert "train mode (1 dropout/normalization layers: 0)" in caplog.text
    assert "switched to eval()" in user.diagnostics.warnings[0]
    assert not any(m.training for m in user.build(10).modules())
    assert model.training  # the caller's module is left as it was


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (lambda b: Wrap(b, "nan"), "returned NaN or inf logits on 200 of 200"),
        (lambda b: nn.Sequential(b, nn.Linear(10, 5)), r"shape \(200, 5\).*\[200, 10\]"),
        (lambda b: nn.Sequential(b, nn.Flatten(0)), r"shape \(2000,\)"),
        (lambda b: Wrap(b, "tuple"), "returned tuple; expected a tensor of logits"),
        (lambda b: nn.Sequential(nn.Flatten(), b), "fails on a test batch .*NCHW float32"),
        (lambda b: Wrap(b, "noise"), "different outputs for two identical calls.*--randomized"),
        (
            lambda b: Wrap(b, "constant"),
            r"accuracy 0\.\d+ .*near chance.*NCHW float32.*in \[0, 1\]",
        ),
    ],
    ids=["nan", "classes", "flat", "tuple", "crash", "random", "chance"],
)
def test_a_model_that_cannot_be_evaluated_is_one_line_error(
    baseline: nn.Module, model, message: str
) -> None:
    with pytest.raises(RBError, match=message) as info:
        _checked(model(baseline))
    assert "\n" not in str(info.value)


def test_declared_randomness_is_accepted_and_attacked_with_eot(
    baseline: nn.Module, tmp_path: Path
) -> None:
    user = _checked(Wrap(baseline, "noise"), randomized=True)
    assert user.randomized and user.prediction_draws() > 1
    assert user.config()["randomized"] is True
    robustbench_lite.evaluate(
        Wrap(baseline, "noise"), name="noisy", attacks=["pgd"], profile="quick", n=10,
        randomized=True, results=tmp_path,
    )  # fmt: skip
    cell = json.loads((tmp_path / "mnist-5k" / "quick" / "noisy" / "pgd.json").read_text())
    assert cell["eot_draws"] == 4 and cell["config"]["prediction_draws"] == user.prediction_draws()


def test_zero_gradients_warn_and_flag_the_row(
    baseline: nn.Module, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = Wrap(baseline, "round")
    with caplog.at_level(logging.WARNING):
        user = _checked(model)
    assert user.diagnostics.zero_grad_share == 1.0
    assert "input gradients of the loss are zero" in caplog.text
    result = robustbench_lite.evaluate(
        model, name="rounded", attacks=["pgd"], profile="quick", n=20, results=tmp_path
    )  # the warning does not stop the run; the run's diagnostics flag its gradient cells
    assert result.clean.value > 0.8
    assert "zero-grad" in result.flags


def test_a_failing_check_stops_evaluate_before_any_result(
    baseline: nn.Module, tmp_path: Path
) -> None:
    with pytest.raises(RBError, match="NaN"):
        robustbench_lite.evaluate(
            Wrap(baseline, "nan"), name="bad", attacks=["pgd"], profile="quick", results=tmp_path
        )
    assert not list(tmp_path.rglob("*.json"))
