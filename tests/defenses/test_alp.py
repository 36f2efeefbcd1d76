"""Adversarial training (`pgd-at`) and adversarial logit pairing (`alp`)."""

from __future__ import annotations

import json

import pytest
import torch

from robustbench_lite.defenses._common.models import mnist_cnn
from robustbench_lite.defenses.alp import ALP, pairing_loss
from robustbench_lite.protocol.registry import attack_class, defense_class, instantiate
from robustbench_lite.running.grid.runner import Runner


def test_pairing_term_is_in_the_loss(mnist_test) -> None:
    torch.manual_seed(0)
    model = mnist_cnn(width=8)
    x, y = mnist_test.x[:16], mnist_test.y[:16]
    x_adv = (x + 0.3 * torch.randn_like(x).sign()).clamp(0, 1)
    with torch.no_grad():
        z, z_adv = model(x), model(x_adv)
    paired = pairing_loss(z, z_adv, y, pairing=0.5, clean_weight=0.5)
    unpaired = pairing_loss(z, z_adv, y, pairing=0.0, clean_weight=0.5)
    distance = (z - z_adv).square().sum(dim=1).mean()
    assert float(distance) > 0
    assert float(paired - unpaired) == pytest.approx(0.5 * float(distance), rel=1e-5)
    # Madry's loss (pgd-at) sees only the adversarial batch.
    madry = pairing_loss(z, z_adv, y, pairing=0.0, clean_weight=0.0)
    assert float(madry) == pytest.approx(float(torch.nn.functional.cross_entropy(z_adv, y)))


def _trained(pairing: float, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    defense = ALP(pairing=pairing, epochs=1, batch_size=32, steps=2, width=8, ramp_length=0.0)
    torch.manual_seed(0)
    model = defense.build(10)
    defense.fit(model, x, y, generator=torch.Generator().manual_seed(1), progress=False)
    return [p.detach().clone() for p in model.parameters()]


def test_lambda_changes_training_and_training_is_deterministic(mnist_test) -> None:
    x, y = mnist_test.x[:128], mnist_test.y[:128]
    paired, again, unpaired = _trained(0.5, x, y), _trained(0.5, x, y), _trained(0.0, x, y)
    assert all(torch.equal(a, b) for a, b in zip(paired, again, strict=True))
    assert not all(torch.allclose(a, b) for a, b in zip(paired, unpaired, strict=True))


def test_training_attack_is_the_registrys_pgd() -> None:
    for name in ("alp", "pgd-at"):
        defense = instantiate(defense_class(name), "standard")
        attack = defense.attack()
        assert type(attack) is attack_class("pgd")
        assert (attack.steps, attack.rel_step_size) == (defense.steps, defense.rel_step_size)
    assert instantiate(defense_class("pgd-at"), "standard").config()["pairing"] == 0.0


def test_adversarial_training_resists_pgd_where_the_baseline_does_not(quick_runner: Runner) -> None:
    runner = Runner(
        profile="quick",
        n=100,
        results_dir=quick_runner.results_dir / "alp",
        quiet=True,
        cache=quick_runner.cache,
    )
    runner.run(["pgd"], ["none", "pgd-at", "alp"])
    acc = {
        name: json.loads((runner.cell_dir / name / "pgd.json").read_text())
        for name in ("none", "pgd-at", "alp")
    }
    assert acc["none"]["robust_acc"] <= 0.1
    for name in ("pgd-at", "alp"):
        assert acc[name]["clean_acc"] >= 0.7
        assert acc[name]["robust_acc"] >= acc["none"]["robust_acc"] + 0.15
