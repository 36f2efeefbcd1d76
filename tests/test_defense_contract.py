"""The contract every registered defense meets, parametrized over the registry."""

from __future__ import annotations

import json

import pytest
import torch

from robustbench_lite import data
from robustbench_lite.plugins import Defense, defense_class, defense_names, instantiate
from robustbench_lite.runner import Runner, predict

DEFENSES = defense_names()


def test_registry_has_the_defenses() -> None:
    assert {"none", "randomization", "ibp", "alp", "pgd-at", "abs"} <= set(DEFENSES)


@pytest.mark.parametrize("profile", ["quick", "standard", "paper"])
@pytest.mark.parametrize("name", DEFENSES)
def test_defense_declares_itself(name: str, profile: str) -> None:
    cls = defense_class(name)
    defense = instantiate(cls, profile)
    assert defense.name == name
    assert isinstance(defense.randomized, bool) and isinstance(defense.certifies, bool)
    assert defense.prediction_draws() >= 1
    config = defense.config()
    assert set(config) == set(cls.hyperparameters())
    json.dumps(config)
    # Every profile override names a real hyper-parameter.
    for overrides in cls.profiles.values():
        assert set(overrides) <= set(config)
    assert all(isinstance(v, int) and v > 0 for v in cls.max_eval_samples.values())


@pytest.mark.parametrize("name", DEFENSES)
def test_quick_model_classifies_and_has_input_gradients(
    name: str, quick_runner: Runner, mnist_test: data.Dataset
) -> None:
    defense = instantiate(defense_class(name), "quick")
    model = quick_runner.model(defense)
    x, y = mnist_test.x[:40], mnist_test.y[:40]
    accuracy = float((predict(model, x, defense.prediction_draws()) == y).double().mean())
    assert accuracy >= 0.6, f"{name} in the quick profile classifies only {accuracy:.2f}"
    xg = x[:4].clone().requires_grad_(True)
    logits = model(xg)
    assert logits.shape == (4, 10)
    assert bool(torch.isfinite(logits).all())
    (grad,) = torch.autograd.grad(logits.logsumexp(1).sum() - logits[:, 0].sum(), xg)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("name", DEFENSES)
def test_a_defense_that_certifies_can(name: str, mnist_test: data.Dataset) -> None:
    defense = instantiate(defense_class(name), "quick")
    overridden = type(defense).certify is not Defense.certify
    assert overridden == defense.certifies
    if defense.certifies:
        torch.manual_seed(0)
        model = defense.build(10).eval()
        flags = defense.certify(model, mnist_test.x[:4], mnist_test.y[:4], 0.3)
        assert flags.dtype == torch.bool and flags.shape == (4,)
        # eps 0 certifies exactly the samples the model classifies correctly.
        with torch.no_grad():
            correct = model(mnist_test.x[:4]).argmax(1) == mnist_test.y[:4]
        exact = defense.certify(model, mnist_test.x[:4], mnist_test.y[:4], 1e-9)
        assert exact.tolist() == correct.tolist()
