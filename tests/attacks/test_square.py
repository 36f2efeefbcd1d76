"""Square Attack (Andriushchenko et al. 2020) on the quick baseline: budget, reproducibility,
strength, the L2 ball, scores-only access and the stochastic-model rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.attacks.square import Square, _pm_window, p_schedule
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.threat_models import THREAT_MODELS

Batch = tuple[torch.Tensor, torch.Tensor]


def _run(
    attack: Square,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    budget: int,
    *,
    seed: int = 0,
    stochastic: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    counter = QueryCounter(
        model, len(x), num_classes=10, knowledge="scores", budget=budget, stochastic=stochastic
    )
    gen = torch.Generator().manual_seed(seed)
    x_adv = attack.run(counter.view(), x, y, eps=eps, budget=budget, generator=gen).x
    return x_adv, counter.counts


def test_p_follows_the_papers_schedule() -> None:
    assert p_schedule(0.8, 0, 10_000) == 0.8
    assert p_schedule(0.8, 11, 10_000) == 0.4
    assert p_schedule(0.8, 600, 10_000) == 0.8 / 16
    assert p_schedule(0.8, 9_999, 10_000) == 0.8 / 512
    assert p_schedule(0.8, 50, 500) == 0.8 / 16  # rescaled: 50 of 500 is 1000 of 10,000


def test_l2_window_is_plus_minus_and_unit_norm() -> None:
    w = _pm_window(7)
    assert float(w.norm()) == pytest.approx(1.0)
    assert bool((w[:3] > 0).all()) and bool((w[3:] < 0).all())


@pytest.mark.parametrize("kwargs", [{"norm": "l1"}, {"p_init": 0.0}, {"p_init": 1.5}])
def test_bad_hyperparameters_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Square(**kwargs)


@pytest.mark.parametrize("budget", [None, 0])
def test_needs_a_budget(budget: int | None, baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    counter = QueryCounter(baseline, len(x), num_classes=10, knowledge="scores")
    with pytest.raises(ValueError):
        Square().run(counter.view(), x, y, eps=0.3, budget=budget, generator=torch.Generator())


def test_fools_the_baseline_within_1000_queries(baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    x_adv, counts = _run(Square(), baseline, x, y, 0.3, 1000)
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6
    fooled = predict(baseline, x_adv) != y
    assert float(fooled.double().mean()) >= 0.9
    assert int(counts.max()) <= 1000
    # a fooled sample stops: most need a few dozen queries, far from the budget
    assert float(counts[fooled].double().median()) < 100


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_budget_is_respected_exactly(norm: str, baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    eps = 0.05 if norm == "linf" else 0.5
    for budget in (1, 2, 37):
        x_adv, counts = _run(Square(norm=norm), baseline, x, y, eps, budget)
        assert int(counts.min()) >= 1 and int(counts.max()) <= budget
        # a sample that still resists has spent its whole budget
        robust = predict(baseline, x_adv) == y
        assert int(robust.sum()) > 0
        assert counts[robust].tolist() == [budget] * int(robust.sum())


def test_same_seed_same_result(baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    x, y = x[:8], y[:8]
    for norm, eps in (("linf", 0.1), ("l2", 1.0)):
        a, ca = _run(Square(norm=norm), baseline, x, y, eps, 60, seed=3)
        b, cb = _run(Square(norm=norm), baseline, x, y, eps, 60, seed=3)
        c, _ = _run(Square(norm=norm), baseline, x, y, eps, 60, seed=4)
        assert torch.equal(a, b) and torch.equal(ca, cb)
        assert not torch.equal(a, c)


def test_l2_stays_in_the_ball_and_makes_progress(baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    eps = 1.5
    first, _ = _run(Square(norm="l2"), baseline, x, y, eps, 1)
    x_adv, counts = _run(Square(norm="l2"), baseline, x, y, eps, 150)
    # Inside the ball in float32 itself, not only within a tolerance: a point 1 ulp outside is
    # rescaled by the runner's projection after the attack scored it, and one found at the
    # boundary could lose its misclassification there.
    for point in (first, x_adv):
        assert float(THREAT_MODELS["l2"].distance(x, point).max()) <= eps
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert int(counts.max()) <= 150
    fooled_first = int((predict(baseline, first) != y).sum())
    assert int((predict(baseline, x_adv) != y).sum()) >= fooled_first + 4


def test_l2_points_lie_inside_the_ball_in_float32() -> None:
    """Away from the box's faces nothing clips, and scaling onto the eps-sphere left 35% of the
    points 1 ulp outside it (462 of 500 starts, 885 of 2,500 steps before the fix)."""
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(500, 1, 28, 28, generator=g)
    attack, ball = Square(norm="l2"), THREAT_MODELS["l2"]
    x_best = attack._init_l2(x, 1.5, g)
    assert float(ball.distance(x, x_best).max()) <= 1.5
    for _ in range(5):
        x_best = attack._step_l2(x, x_best, 1.5, 0.05, g)
        assert float(ball.distance(x, x_best).max()) <= 1.5


def test_uses_scores_without_autograd(baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch

    def model(z: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "Square must not differentiate through the model"
        return baseline(z)

    _run(Square(), model, x[:4], y[:4], 0.3, 20)


def test_a_stochastic_model_spends_the_whole_budget(
    baseline: nn.Module, clean_batch: Batch
) -> None:
    x, y = clean_batch
    x_adv, counts = _run(Square(), baseline, x[:8], y[:8], 0.3, 50, stochastic=True)
    assert counts.tolist() == [50] * 8
    assert bool((predict(baseline, x_adv) != y[:8]).all())
