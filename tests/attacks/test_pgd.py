"""PGD (Madry et al. 2018): steps, restarts, losses and norms behave as documented."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.api import margin_loss
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter


def _fooled(
    attack: PGD, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int = 0
) -> tuple[torch.Tensor, QueryCounter]:
    counter = QueryCounter(model, len(x), num_classes=10)
    gen = torch.Generator().manual_seed(seed)
    x_adv = attack.run(counter.view(), x, y, eps=eps, budget=None, generator=gen).x
    return predict(model, x_adv) != y, counter


def test_default_step_is_the_papers() -> None:
    assert PGD().step_size(0.3) == pytest.approx(0.01)
    assert PGD(abs_step_size=0.05).step_size(0.3) == 0.05
    assert PGD(norm="l2", rel_step_size=0.5).step_size(1.5) == 0.75


def test_margin_loss_is_positive_exactly_when_misclassified() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])
    assert margin_loss(logits, y).tolist() == [-1.0, 3.0]


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_more_steps_fool_more(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor], norm: str, loss: str
) -> None:
    x, y = clean_batch
    eps = 0.1 if norm == "linf" else 1.0
    weak, _ = _fooled(PGD(norm=norm, steps=1, loss=loss), baseline, x, y, eps)
    strong, counter = _fooled(PGD(norm=norm, steps=20, loss=loss), baseline, x, y, eps)
    assert int(strong.sum()) > int(weak.sum())
    assert int(counter.counts.max()) <= 21  # steps + 1 forward passes, fewer once fooled


def test_restarts_keep_the_per_sample_worst_case(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch
    once, _ = _fooled(PGD(steps=3, restarts=1), baseline, x, y, 0.08, seed=5)
    thrice, counter = _fooled(PGD(steps=3, restarts=4), baseline, x, y, 0.08, seed=5)
    assert bool((thrice | ~once).all()), "a sample fooled by restart 1 must stay fooled"
    assert int(once.sum()) > 0 and int(thrice.sum()) < len(y)
    # Samples fooled in the first restart are not attacked again; the others ran every restart.
    assert int(counter.counts[once].max()) <= 4
    assert counter.counts[~thrice].tolist() == [4 * 4] * int((~thrice).sum())


def test_without_random_start_the_attack_is_deterministic(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch
    attack = PGD(steps=5, random_start=False)
    runs = [
        attack.run(
            QueryCounter(baseline, len(x), num_classes=10).view(),
            x,
            y,
            eps=0.1,
            budget=None,
            generator=torch.Generator().manual_seed(s),
        )
        for s in (1, 2)
    ]
    assert torch.equal(runs[0].x, runs[1].x)


@pytest.mark.parametrize(
    "kwargs",
    [{"norm": "l1"}, {"steps": 0}, {"restarts": 0}, {"loss": "hinge"}, {"rel_step_size": -1.0}],
)
def test_bad_hyperparameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PGD(**kwargs)
