"""Every tensor a plugin or the protocol makes lives on the data's device, tested without a GPU.

CI has no CUDA, so the data stay on the CPU and torch's default device is set to `meta` while
the code under test runs: a tensor made without naming a device (`torch.zeros(n)`, a random draw
from a generator on another device) then lands on `meta`, and the first operation that mixes it
with the data raises, as a CPU tensor meeting CUDA data would on a GPU. Tensors kept on the CPU on
purpose (the query counts, the per-sample arrays) say so with `device="cpu"`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustbench_lite.protocol import checks as diagnostics
from robustbench_lite.protocol import evaluate as cell
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.recipe import recipe_of
from robustbench_lite.protocol.registry import (
    attack_class,
    attack_names,
    data_source,
    defense_class,
    defense_names,
    instantiate,
)
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.models import ModelCache

STAND_IN = torch.device("meta")


def _on_stand_in(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with STAND_IN:
            return fn(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("name", attack_names())
def test_an_attack_makes_its_tensors_on_the_data_device(
    name: str, baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    attack = instantiate(attack_class(name), "quick")
    x, y = (t[:8] for t in clean_batch)
    if attack.surrogate_defense() is not None:  # crafted on a copy of the model: its mechanics
        attack.use_surrogate(recipe_of("none", lambda: copy.deepcopy(baseline), baseline, x.device), None)  # fmt: skip
    budget = None if attack.knowledge == "gradient" else 100
    counter = QueryCounter(
        baseline, len(x), num_classes=10, knowledge=attack.knowledge, budget=budget
    )
    eps = data_source("mnist-5k").default_eps(attack.threat_model)
    generator = torch.Generator(device=x.device).manual_seed(0)
    with STAND_IN:
        output = attack.run(counter.view(), x, y, eps=eps, budget=budget, generator=generator)
    x_adv = output.x
    assert x_adv.device == x.device
    assert int(counter.counts.sum()) > 0


@pytest.mark.parametrize("name", defense_names())
def test_a_defense_model_computes_on_the_data_device(
    name: str, quick_runner: Runner, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = quick_runner.model(instantiate(defense_class(name), "quick"))
    x = clean_batch[0][:4]
    with STAND_IN:
        logits = model(x)
    assert logits.device == x.device and logits.shape == (4, 10)


def test_the_protocol_keeps_to_the_data_device(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cell evaluation (counter, EOT, verifier, projection), diagnostics and IBP's float64
    certificate, through the runner, for a plain, a randomized and a certifying defense."""
    monkeypatch.setattr(cell, "evaluate", _on_stand_in(cell.evaluate))
    monkeypatch.setattr(diagnostics, "run_checks", _on_stand_in(diagnostics.run_checks))
    ibp = defense_class("ibp")
    monkeypatch.setattr(ibp, "certify", _on_stand_in(ibp.certify))
    runner = Runner(
        profile="quick",
        n=20,
        budget=100,
        results_dir=tmp_path,
        quiet=True,
        cache=ModelCache(rb_home),
    )
    board = runner.run(["pgd", "square", "boundary", "spatial"], ["none", "randomization", "ibp"])
    assert not runner.failed
    assert set(board["defense"]) == {"none", "randomization", "ibp"}
    assert board["certified_acc"].notna().any()
