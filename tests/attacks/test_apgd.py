"""APGD and APGD-T (Croce & Hein 2020) on the quick baseline: schedule, losses, strength,
targets, early stopping and the stochastic-model rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.api import LOSSES
from robustbench_lite.attacks.apgd import APGD, APGD_LOSSES, checkpoints
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, instantiate

Batch = tuple[torch.Tensor, torch.Tensor]


def _attack(
    attack: APGD | PGD,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    stochastic: bool = False,
) -> tuple[torch.Tensor, QueryCounter]:
    counter = QueryCounter(model, len(x), num_classes=10, stochastic=stochastic)
    gen = torch.Generator().manual_seed(0)
    x_adv = attack.run(counter.view(), x, y, eps=eps, budget=None, generator=gen).x
    return x_adv, counter


def test_checkpoints_are_the_papers() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of 100 iterations.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [1]
    assert all(0 < w <= 20 for w in checkpoints(20))


def test_dlr_losses() -> None:
    dlr_loss, targeted_dlr_loss = LOSSES["dlr"], LOSSES["dlr-targeted"]
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0], [1.0, 4.0, 2.0, 0.0, 0.0]])
    y = torch.tensor([0, 0])
    # untargeted: -(z_y - max other) / (z_pi1 - z_pi3); positive exactly when misclassified
    assert dlr_loss(logits, y).tolist() == pytest.approx([-1 / 2, 1.0])
    # targeted: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    t = torch.tensor([2, 2])
    assert targeted_dlr_loss(logits, y, t).tolist() == pytest.approx([-2 / 2.5, 1 / 3.5])
    # scale invariant: multiplying the logits changes nothing
    assert torch.allclose(targeted_dlr_loss(7 * logits, y, t), targeted_dlr_loss(logits, y, t))
    with pytest.raises(ValueError, match="needs a target"):
        targeted_dlr_loss(logits, y)


def test_the_attacks_losses_are_the_registrys() -> None:
    from robustbench_lite.attacks.nes import NES_LOSSES
    from robustbench_lite.attacks.pgd import PGD_LOSSES

    assert {*APGD_LOSSES, *PGD_LOSSES, *NES_LOSSES} == set(LOSSES)
    assert all(name == loss.name for name, loss in LOSSES.items())
    assert [n for n, loss in LOSSES.items() if loss.needs_target] == ["dlr-targeted"]
    assert APGD(loss="dlr-targeted").unsupported((1, 28, 28), 3) is not None
    assert APGD(loss="ce").unsupported((1, 28, 28), 2) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": "l1"},
        {"loss": "margin"},
        {"steps": 0},
        {"restarts": 0},
        {"n_target_classes": 0},
        {"rho": 0.0},
        {"momentum": 1.5},
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        APGD(**kwargs)


def test_presets_and_profiles() -> None:
    apgd_t = instantiate(attack_class("apgd-t"), "quick")
    assert (apgd_t.loss, apgd_t.norm, apgd_t.n_target_classes) == ("dlr-targeted", "linf", 3)
    assert instantiate(attack_class("apgd-t"), "standard").n_target_classes == 9
    assert instantiate(attack_class("apgd"), "paper").restarts == 5
    l2 = instantiate(attack_class("apgd-t-l2"), "standard")
    assert (l2.threat_model, l2.loss, l2.steps) == ("l2", "dlr-targeted", 100)


def test_breaks_the_baseline_at_large_eps(baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    x_adv, counter = _attack(APGD(steps=20), baseline, x, y, 0.3)
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6
    assert bool((predict(baseline, x_adv) != y).all())
    # every sample stops at the first iterate that fools it
    assert int(counter.counts.max()) <= 21 and float(counter.counts.double().mean()) < 5


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.8)])
def test_at_least_as_strong_as_pgd_at_equal_steps(
    baseline: nn.Module, clean_batch: Batch, norm: str, eps: float
) -> None:
    x, y = clean_batch
    pgd = PGD(norm=norm, steps=20, rel_step_size=0.25)
    x_pgd, _ = _attack(pgd, baseline, x, y, eps)
    x_apgd, counter = _attack(APGD(norm=norm, steps=20), baseline, x, y, eps)
    fooled_pgd = int((predict(baseline, x_pgd) != y).sum())
    fooled_apgd = int((predict(baseline, x_apgd) != y).sum())
    assert 0 < fooled_apgd < len(y)  # a small eps: neither trivial nor hopeless
    assert fooled_apgd >= fooled_pgd
    assert int(counter.counts.max()) <= 21
    if norm == "l2":
        assert float((x_apgd - x).flatten(1).norm(dim=1).max()) <= eps + 1e-5


def test_targeted_runs_aim_at_the_next_likeliest_classes(
    baseline: nn.Module, clean_batch: Batch
) -> None:
    x, y = clean_batch
    with torch.no_grad():
        clean = baseline(x).scatter(1, y[:, None], float("-inf"))
    ranked = clean.argsort(dim=1, descending=True)
    # one target: the runner-up class of the clean logits
    x_adv, counter = _attack(
        APGD(loss="dlr-targeted", steps=20, n_target_classes=1), baseline, x, y, 0.3
    )
    pred = predict(baseline, x_adv)
    assert bool((pred != y).all())
    assert float((pred == ranked[:, 0]).double().mean()) >= 0.9
    # three targets at a small eps: what it fools lands in the top three other classes, and
    # the samples that resist were attacked once per target (one clean query besides)
    x_adv, counter = _attack(
        APGD(loss="dlr-targeted", steps=10, n_target_classes=3), baseline, x, y, 0.08
    )
    pred = predict(baseline, x_adv)
    fooled = pred != y
    assert 0 < int(fooled.sum()) < len(y)
    in_top3 = (pred[:, None] == ranked[:, :3]).any(dim=1)
    assert float(in_top3[fooled].double().mean()) >= 0.9
    assert counter.counts[~fooled].tolist() == [1 + 3 * 11] * int((~fooled).sum())


def test_a_stochastic_model_gets_every_step(baseline: nn.Module, clean_batch: Batch) -> None:
    x, y = clean_batch
    x_adv, counter = _attack(APGD(steps=6, restarts=2), baseline, x, y, 0.3, stochastic=True)
    # no early exit on a fooled answer: every sample runs both restarts in full
    assert counter.counts.tolist() == [2 * 7] * len(y)
    assert bool((predict(baseline, x_adv) != y).all())
