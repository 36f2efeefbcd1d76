"""What a user says about their own model is checked before any work (issue 39): probabilities
instead of logits warn, a normalization in 0-255 units or of another channel count than the
data's is refused in one line, and the normalization wrapper raises no false train-mode
warning."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from robustbench_lite.running.own.checks import warn_on_probabilities
from robustbench_lite.running.own.model import UserModel

FACTORY = "robustbench_lite.defenses:mnist_cnn"
IDENTITY = ([0.0], [1.0])  # a normalization that leaves the baseline's inputs as they are


def test_a_model_returning_probabilities_warns(
    baseline: nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        plain = UserModel(baseline, name="logits")
        plain.run_checks("mnist-5k")
    assert "probabilities" not in caplog.text and plain.diagnostics.warnings == []
    softmax = nn.Sequential(copy.deepcopy(baseline), nn.Softmax(dim=1)).eval()
    with caplog.at_level(logging.WARNING):
        user = UserModel(softmax, name="probs")
        user.run_checks("mnist-5k")
    said = [w for w in user.diagnostics.warnings if "returns probabilities" in w]
    assert len(said) == 1 and "attacks need logits" in said[0] and said[0] in caplog.text
    assert "\n" not in said[0]


def test_only_rows_of_probabilities_count() -> None:
    """Rows in [0, 1] summing to 1 within 1e-4 are probabilities; log-probabilities, sigmoids
    and logits that happen to be small are not."""
    x = torch.zeros(4, 1, 2, 2)

    def warns(out: torch.Tensor) -> bool:
        from robustbench_lite.protocol.checks import Diagnostics

        class Fixed(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return out

        return warn_on_probabilities(Fixed(), x, "m", Diagnostics())

    probs = torch.softmax(torch.randn(4, 10), dim=1)
    assert warns(probs)
    assert warns(probs + 5e-6)  # rows sum to 1 + 5e-5: within the tolerance
    assert not warns(probs + 5e-5)  # rows sum to 1.0005
    assert not warns(probs.log())
    assert not warns(torch.sigmoid(torch.randn(4, 10)))  # in [0, 1], rows not summing to 1
    assert not warns(probs * 0.9)


@pytest.mark.parametrize(
    ("normalize", "message"),
    [
        (([125.3], [63.0]), "--normalize mean 125.3, std 63 looks like 0-255 units; divide by 255"),
        (([0.5], [2.0]), "looks like 0-255 units"),  # a std above 1 on [0, 1] images
        (([-0.5], [0.5]), "looks like 0-255 units"),
    ],
)
def test_a_normalization_in_0_255_units_is_refused(
    baseline: nn.Module, normalize: tuple[list[float], list[float]], message: str
) -> None:
    with pytest.raises(RBError, match=message):
        UserModel(baseline, name="mine", normalize=normalize)
    UserModel(baseline, name="mine", normalize=([0.5], [0.5]))  # [0, 1]-scale: accepted


def test_a_normalization_of_another_channel_count_is_refused(
    baseline: nn.Module, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    three = ([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    with pytest.raises(RBError, match="--normalize gives 3 channels, the data has 1"):
        UserModel(baseline, name="mine", normalize=three).run_checks("mnist-5k")
    UserModel(baseline, name="mine", normalize=IDENTITY).run_checks("mnist-5k")  # one for all
    argv = ["run", "--model", FACTORY, "--name", "mine", "-a", "pgd", "--results", str(tmp_path)]
    assert main([*argv, "--normalize", "0.49:0.48:0.45,0.25:0.24:0.26"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rb: error: --normalize gives 3 channels, the data has 1")
    assert err.count("\n") == 1
    assert main([*argv, "--normalize", "125.3,63.0"]) == 2
    assert "looks like 0-255 units; divide by 255" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any work


def test_no_false_train_mode_warning_behind_a_normalization(
    baseline: nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        user = UserModel(copy.deepcopy(baseline).eval(), name="mine", normalize=IDENTITY)
        user.run_checks("mnist-5k")
    assert "train mode" not in caplog.text and user.diagnostics.warnings == []
    assert not any(m.training for m in user.build(10).modules())
    # The user's own module in train mode still warns, normalized or not.
    user = UserModel(copy.deepcopy(baseline).train(), name="mine", normalize=IDENTITY)
    assert any("was in train mode" in w for w in user.diagnostics.warnings)
    assert "(root)" in user.diagnostics.warnings[0]  # the user's module, not the wrapper's name
