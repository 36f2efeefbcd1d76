"""The spatial attack against foolbox's, and the runner's own verification of spatial results."""

from __future__ import annotations

import json
from typing import Any

import eagerpy as ep
import foolbox as fb
import pytest
import torch
from foolbox.attacks.spatial_attack_transformations import rotate_and_shift
from safetensors.torch import load_file
from torch import nn

from robustbench_lite import data
from robustbench_lite.attacks.spatial import Spatial
from robustbench_lite.protocol.contracts import Attack, QueryModel
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.protocol.threat_models import SPATIAL
from robustbench_lite.protocol.transforms import rotate_translate
from robustbench_lite.running.grid.executors import LocalExecutor, run_jobs
from robustbench_lite.running.grid.jobs import CellJob
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.grid.trained import model_recipe
from robustbench_lite.store.layout import adv_path

# foolbox samples with align_corners=True, so its "t pixels" move content by t * (n-1)/n pixels,
# and it shifts by -t before rotating (our transform shifts by +t): ours(a, t) == fb(a, -t * n/(n-1)).
FB_SCALE = 28 / 27


@pytest.fixture(scope="module")
def correct(baseline: nn.Module, mnist_test: data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """120 test digits the quick baseline classifies correctly."""
    x, y = mnist_test.x[:130], mnist_test.y[:130]
    keep = predict(baseline, x) == y
    return x[keep][:120], y[keep][:120]


def test_rendering_matches_foolbox_up_to_its_conventions(correct: Any) -> None:
    x = correct[0][:8]
    ours = rotate_translate(x, 20.0, 1.0, -0.5)
    theirs = rotate_and_shift(
        ep.astensor(x), translation=(-1.0 * FB_SCALE, 0.5 * FB_SCALE), rotation=20.0
    ).raw
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_grid_matches_foolbox_per_sample(baseline: nn.Module, correct: Any) -> None:
    x, y = correct
    eps = 0.3  # +-9 degrees, +-0.9 px: a range where the quick baseline survives some digits
    attack = Spatial(rotations=7, translations=3)
    counter = QueryCounter(baseline, len(x), num_classes=10)
    x_adv, extras = attack.run(
        counter.view(), x, y, eps=eps, budget=None, generator=torch.Generator()
    )
    ours = predict(baseline, SPATIAL.project(x, x_adv, eps, extras)) != y
    # The same 7 x 3 x 3 grid (symmetric, so the translation sign flip maps it onto itself).
    foolbox_attack = fb.attacks.SpatialAttack(
        max_rotation=30 * eps,
        max_translation=3 * eps * FB_SCALE,
        num_rotations=7,
        num_translations=3,
    )
    _, _, success = foolbox_attack(fb.PyTorchModel(baseline, bounds=(0, 1)), x, y)
    assert 0 < int(ours.sum()) < len(x), "the check needs both outcomes"
    assert ours.tolist() == success.tolist()
    # Early exit: a fooled sample is charged up to its first success, a robust one the grid.
    assert int(counter.counts[~ours].min()) == 63
    assert float(counter.counts[ours].double().mean()) < 63


def test_random_mode_is_seeded_and_records_what_fooled(baseline: nn.Module, correct: Any) -> None:
    x, y = correct
    attack = Spatial(mode="random", tries=10)
    runs = []
    for _ in range(2):
        counter = QueryCounter(baseline, len(x), num_classes=10)
        gen = torch.Generator().manual_seed(7)
        runs.append(attack.run(counter.view(), x, y, eps=1.0, budget=None, generator=gen))
        assert int(counter.counts.max()) <= 10
    (x_adv, extras), (x_again, _) = runs
    assert torch.equal(x_adv, x_again)
    params = torch.stack([extras[k] for k in SPATIAL.params], dim=1)
    assert bool((params[:, 0].abs() <= 30).all() and (params[:, 1:].abs() <= 3).all())
    fooled = predict(baseline, SPATIAL.project(x, x_adv, 1.0, extras)) != y
    assert bool(fooled.any())
    # Fooled samples carry the transform that fooled them; the rest the identity.
    assert fooled.tolist() == (params != 0).any(dim=1).tolist()


class _Liar(Attack):
    """Returns pixels that fool (inverted digits) and a transform that does not match them."""

    name = "liar"
    threat_model = "spatial"
    knowledge = "labels"

    def __init__(self, *, angle: float = 0.0, record: bool = True) -> None:
        self.angle = angle
        self.record = record

    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> Any:
        model(x)
        zeros = torch.zeros(len(x), dtype=torch.float64)
        extras = {"angle": zeros + self.angle, "dx": zeros, "dy": zeros}
        return (1.0 - x, extras) if self.record else 1.0 - x


def _recipe(runner: Runner, defense: Any, model: nn.Module) -> Any:
    return model_recipe(defense, runner.source, runner.seed, model, "cpu")


def test_runner_renders_spatial_results_itself(
    quick_runner: Runner, baseline: nn.Module, mnist_test: data.Dataset, tmp_path: Any
) -> None:
    runner = Runner(
        profile="quick", n=40, results_dir=tmp_path, quiet=True, cache=quick_runner.cache
    )
    runner.save_adv = True
    defense = instantiate(defense_class("none"), "quick")
    x, y = mnist_test.x[:40], mnist_test.y[:40]
    clean_pred = predict(baseline, x)
    correct = clean_pred == y
    assert float((predict(baseline, 1.0 - x) != y)[correct].double().mean()) > 0.8

    # Identity recorded: the inverted pixels are ignored, nothing is credited.
    liar = _Liar(angle=0.0)
    run_jobs(
        LocalExecutor(),
        [
            CellJob(
                runner.context(),
                defense,
                _recipe(runner, defense, baseline),
                liar,
                x,
                y,
                clean_pred,
                weights=None,
            )
        ],
    )
    record = json.loads(runner.cell_path(defense, liar).read_text())
    assert record["samples"]["robust"] == correct.tolist()

    # An angle past the range is clipped to 30 degrees, recorded and rendered as such.
    liar = _Liar(angle=90.0)
    run_jobs(
        LocalExecutor(),
        [
            CellJob(
                runner.context(),
                defense,
                _recipe(runner, defense, baseline),
                liar,
                x,
                y,
                clean_pred,
                weights=None,
            )
        ],
    )
    path = runner.cell_path(defense, liar)
    samples = json.loads(path.read_text())["samples"]
    angles = [a for a, c in zip(samples["extras"]["angle"], correct.tolist(), strict=True) if c]
    assert angles == [30.0] * int(correct.sum())
    rendered = rotate_translate(x, 30.0, 0.0, 0.0).clamp(0, 1)
    stored = load_file(str(adv_path(path)))["x_adv"]
    torch.testing.assert_close(stored[correct], rendered[correct])
    assert (
        samples["adv_pred"]
        == torch.where(correct, predict(baseline, rendered), clean_pred).tolist()
    )

    job = CellJob(
        runner.context(),
        defense,
        _recipe(runner, defense, baseline),
        _Liar(record=False),
        x,
        y,
        clean_pred,
        weights=None,
    )
    run_jobs(LocalExecutor(), [job])
    assert "must record angle, dx, dy" in runner.failed[-1]  # the cell fails, with the reason
