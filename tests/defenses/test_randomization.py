"""The randomization defense and expectation over transformation in the runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from robustbench_lite import data
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import Defense
from robustbench_lite.protocol.eot import EOT
from robustbench_lite.protocol.evaluate import predict, verify
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.report import tables
from robustbench_lite.running.check.rerun import check
from robustbench_lite.running.grid.runner import Runner


@pytest.fixture(scope="module")
def randomized(quick_runner: Runner) -> tuple[Defense, nn.Module]:
    """The resize-and-pad defense trained in the quick profile (cached for the session)."""
    defense = instantiate(defense_class("randomization"), "quick")
    return defense, quick_runner.model(defense)


def test_randomized_yet_reproducible_under_a_seed(
    randomized: tuple[Defense, nn.Module], mnist_test: data.Dataset
) -> None:
    defense, model = randomized
    x, y = mnist_test.x[:200], mnist_test.y[:200]
    torch.manual_seed(0)
    first, second = model(x), model(x)
    torch.manual_seed(0)
    again = model(x)
    assert not torch.equal(first, second)
    assert torch.equal(first, again)
    # Trained on its own transform, its majority vote still reads digits.
    assert defense.randomized and defense.prediction_draws() == 5
    assert float((predict(model, x, defense.prediction_draws()) == y).double().mean()) > 0.85


def test_noise_mode_and_bad_settings() -> None:
    noisy = instantiate(defense_class("randomization"), "quick", {"mode": "noise", "sigma": 0.5})
    model = noisy.build(10)
    x = torch.full((4, 1, 28, 28), 0.5)
    first = model[0](x)
    assert not torch.equal(first, model[0](x))
    assert abs(float((first - x).std()) - 0.5) < 0.05
    with pytest.raises(RBError, match="resize_min"):
        instantiate(defense_class("randomization"), "quick", {"resize_min": 35})
    with pytest.raises(RBError, match="mode"):
        instantiate(defense_class("randomization"), "quick", {"mode": "blur"})


def test_eot_view_is_the_mean_softmax_over_draws(
    randomized: tuple[Defense, nn.Module], mnist_test: data.Dataset
) -> None:
    model = randomized[1]
    x = mnist_test.x[:8]
    torch.manual_seed(3)
    view = EOT(model, 5)(x)
    torch.manual_seed(3)
    mean = torch.stack([F.softmax(model(x), dim=1) for _ in range(5)]).mean(dim=0)
    torch.testing.assert_close(view.exp(), mean, atol=1e-6, rtol=0)


@pytest.mark.bench
def test_eot_is_not_weaker_and_no_eot_is_a_marked_cell(
    quick_runner: Runner,
    randomized: tuple[Defense, nn.Module],
    tmp_path: Path,
    mnist_test: data.Dataset,
) -> None:
    settings: dict[str, Any] = {"profile": "quick", "n": 60, "eps": 0.05, "quiet": True}
    settings.update(cache=quick_runner.cache, save_adv=True)
    Runner(results_dir=tmp_path, **settings).run(["pgd"], ["randomization"])
    board = Runner(results_dir=tmp_path, eot=False, **settings).run(["pgd"], ["randomization"])
    cells = tmp_path / "mnist-5k" / "quick" / "randomization"
    eot = json.loads((cells / "pgd@eps=0.05.json").read_text())
    no_eot = json.loads((cells / "pgd@eps=0.05@no-eot.json").read_text())
    assert (eot["eot_draws"], eot["no_eot"]) == (4, False)
    assert (no_eot["eot_draws"], no_eot["no_eot"]) == (1, True)
    # One verdict is a majority of 5 draws: at n = 60 it moves by several samples between
    # verifier seeds, so compare both cells' examples under the same 10 verifier seeds.
    defense, model = randomized
    y = mnist_test.y[:60]

    def mean_robust(stem: str) -> float:
        x_adv = load_file(str(cells / f"{stem}.adv.safetensors"))["x_adv"]
        draws = defense.prediction_draws()
        return sum(float((verify(model, x_adv, draws, s) == y).double().mean()) for s in range(10))

    assert mean_robust("pgd@eps=0.05") <= mean_robust("pgd@eps=0.05@no-eot")
    assert no_eot["robust_acc"] > 0.5  # room for EOT to matter at this eps
    # PGD takes all 10 steps against a stochastic model: 11 rows, each charged m draws.
    for record, m in ((eot, 4), (no_eot, 1)):
        samples = record["samples"]
        charged = {
            q for q, c in zip(samples["queries"], samples["clean_correct"], strict=True) if c
        }
        assert charged == {11 * m}
    assert {"pgd@eps=0.05", "pgd@eps=0.05@no-eot"} <= set(board.columns)
    assert "`@no-eot`:" in tables.to_markdown(board)
    # Same seed, fresh folder: the same numbers, draw for draw.
    Runner(results_dir=tmp_path / "again", **settings).run(["pgd"], ["randomization"])
    again = json.loads(
        (
            tmp_path / "again" / "mnist-5k" / "quick" / "randomization" / "pgd@eps=0.05.json"
        ).read_text()
    )
    assert again["samples"] == eot["samples"]
    # `rb check` reruns each cell as it was made, the no-EOT one without EOT.
    report = check(cells.parent / "leaderboard.csv", reuse_models=True)
    assert not report.failed, report.render()
    assert {c.cell for c in report.changes if c.verdict == "ok"} >= {
        "randomization/pgd@eps=0.05",
        "randomization/pgd@eps=0.05@no-eot",
    }
