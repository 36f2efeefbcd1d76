"""The contract every registered defense meets in the quick profile, parametrized over the registry."""

from __future__ import annotations

import json

import pytest
import torch

from robustbench_lite import data
from robustbench_lite.plugins import defense_class, defense_names, instantiate
from robustbench_lite.runner import Runner, predict

DEFENSES = defense_names()


@pytest.mark.parametrize("name", DEFENSES)
def test_defense_declares_itself(name: str) -> None:
    cls = defense_class(name)
    defense = instantiate(cls, "quick")
    assert defense.name == name
    assert set(defense.config()) == set(cls.hyperparameters())
    json.dumps(defense.config())
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
