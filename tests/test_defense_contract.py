"""The contract every registered defense meets, parametrized over the registry."""

from __future__ import annotations

import json

import pytest
import torch

from robustbench_lite.plugins import Defense, defense_class, defense_names, instantiate

DEFENSES = defense_names()


def test_registry_has_the_training_defenses() -> None:
    assert {"none", "ibp", "alp", "pgd-at"} <= set(DEFENSES)


@pytest.mark.parametrize("profile", ["quick", "standard", "paper"])
@pytest.mark.parametrize("name", DEFENSES)
def test_defense_declares_itself(name: str, profile: str) -> None:
    defense = instantiate(defense_class(name), profile)
    assert defense.name == name
    assert isinstance(defense.randomized, bool) and isinstance(defense.certifies, bool)
    assert defense.prediction_draws() >= 1
    config = defense.config()
    assert set(config) == set(type(defense).hyperparameters())
    json.dumps(config)
    # Every profile override names a real hyper-parameter.
    for overrides in type(defense).profiles.values():
        assert set(overrides) <= set(config)


@pytest.mark.parametrize("name", DEFENSES)
def test_defense_builds_a_classifier_of_images(name: str, mnist_test) -> None:
    defense = instantiate(defense_class(name), "quick")
    torch.manual_seed(0)
    model = defense.build(10)
    x = mnist_test.x[:4]
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (4, 10)
    assert bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("name", DEFENSES)
def test_a_defense_that_certifies_can(name: str, mnist_test) -> None:
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
