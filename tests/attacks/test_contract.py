"""The contract every registered attack meets, parametrized over the registry."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.registry import (
    attack_class,
    attack_names,
    defense_class,
    instantiate,
)
from robustbench_lite.protocol.threat_models import THREAT_MODELS
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.layout import adv_path
from robustbench_lite.testing import check_attack, check_attack_declares_itself

ATTACKS = attack_names()


def _quick(name: str) -> Attack:
    return instantiate(attack_class(name), "quick")


def test_registry_is_not_empty() -> None:
    assert {"pgd", "pgd-l2"} <= set(ATTACKS)


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_declares_itself(name: str) -> None:
    attack = check_attack_declares_itself(attack_class(name))
    assert attack.name == name


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_output_is_valid_and_every_sample_is_charged(
    name: str, baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The contract a third party's CI runs too (robustbench_lite.testing.check_attack)."""
    check_attack(attack_class(name), baseline, *clean_batch)


@pytest.mark.parametrize("name", ATTACKS)
def test_runner_verdict_matches_its_stored_examples(
    name: str, quick_runner: Runner, baseline: nn.Module, mnist_test
) -> None:
    runner = Runner(
        profile="quick",
        n=40,
        results_dir=quick_runner.results_dir / "contract",
        quiet=True,
        cache=quick_runner.cache,
        save_adv=True,
        budget=500,
    )
    runner.run([name], ["none"])
    defense = instantiate(defense_class("none"), "quick")
    path = runner.cell_path(defense, _quick(name))
    record = json.loads(path.read_text())
    samples = record["samples"]
    x_adv = load_file(str(adv_path(path)))["x_adv"]
    y = mnist_test.y[:40]
    pred = predict(baseline, x_adv)
    assert pred.tolist() == samples["adv_pred"]
    correct = torch.tensor(samples["clean_correct"])
    robust = torch.tensor(samples["robust"])
    assert robust.tolist() == (correct & (pred == y)).tolist()
    queries = torch.tensor(samples["queries"])
    assert bool((queries[correct] > 0).all()) and bool((queries[~correct] == 0).all())
    assert record["robust_acc"] == pytest.approx(float(robust.double().mean()))
    # What was graded lies in the threat model around the runner's own x.
    tm = THREAT_MODELS[record["threat_model"]]
    if tm.name != "spatial":
        x = mnist_test.x[:40]
        assert bool((tm.distance(x, x_adv) <= record["eps"] + 1e-5).all())
    assert record["robust_acc"] <= record["clean_acc"]
