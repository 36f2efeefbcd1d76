"""NES and LF-NES on the quick baseline: they fool it, stop early, keep to the budget, and use
scores only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.attacks._common.frequency import dct2
from robustbench_lite.attacks.nes import NES
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, instantiate
from robustbench_lite.running.grid.runner import Runner

EPS = 0.3


def _run(attack: NES, model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: int):
    counter = QueryCounter(model, len(x), num_classes=10)
    x_adv = attack.run(counter.view(), x, y, eps=EPS, budget=budget, generator=torch.Generator()).x
    return x_adv, counter.counts


@pytest.mark.parametrize("name", ["nes", "lf-nes"])
def test_fools_the_baseline_and_stops_each_sample_once_fooled(
    name: str, baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch
    attack = instantiate(attack_class(name), "standard")
    budget = 2000
    x_adv, counts = _run(attack, baseline, x, y, budget)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    fooled = predict(baseline, x_adv) != y
    assert float(fooled.double().mean()) >= 0.9
    assert int(counts.max()) <= budget
    # A fooled sample's last query was the check that found it: k rounds of (1 + samples) + 1.
    per_round = 1 + attack.config()["samples"]
    assert bool(((counts[fooled] - 1) % per_round == 0).all())
    assert float(counts[fooled].double().median()) < budget / 4


def test_never_exceeds_a_tight_budget(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch
    for budget in (1, 20, 21, 50):
        _, counts = _run(NES(), baseline, x, y, budget)
        assert int(counts.min()) >= 1 and int(counts.max()) <= budget


def test_uses_scores_without_autograd(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch

    def model(z: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "NES must not differentiate through the model"
        return baseline(z)

    _, counts = _run(NES(), model, x[:4], y[:4], 100)  # type: ignore[arg-type]
    assert bool((counts > 0).all())


def test_lf_nes_probes_only_low_frequency_directions(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Mid-grey images keep x + sigma*delta inside [0,1], so no clipping hides the noise.
    x, y = clean_batch[0] * 0.5 + 0.25, clean_batch[1]
    keep = predict(baseline, x) == y  # the check query must not stop them
    x, y = x[keep][:2], y[keep][:2]
    queries: list[torch.Tensor] = []

    def model(z: torch.Tensor) -> torch.Tensor:
        queries.append(z.clone())
        return baseline(z)

    attack = instantiate(attack_class("lf-nes"), "standard", {"ratio": 0.25})
    counter = QueryCounter(model, len(x), num_classes=10)
    attack.run(counter.view(), x, y, eps=EPS, budget=21, generator=torch.Generator())
    check, probes = queries[0], queries[1]
    delta = (probes.view(2, -1, 1, 28, 28) - check[:, None]).flatten(0, 1)
    coeffs = dct2(delta)
    assert float(coeffs[..., :7, :7].abs().max()) > 1e-4
    coeffs[..., :7, :7] = 0
    assert float(coeffs.abs().max()) < 1e-5


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"sigma": 0.0}, "sigma must be positive"),
        ({"sigma": -1e-3}, "sigma must be positive"),
        ({"samples": 7}, "samples must be an even number"),
        ({"max_lr": 1e-6, "min_lr": 1e-3}, "min_lr <= max_lr"),
        ({"loss": "hinge"}, "loss must be one of"),
    ],
)
def test_bad_hyper_parameters_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NES(**settings)
    with pytest.raises(RBError, match=message):
        instantiate(attack_class("lf-nes"), "quick", settings)


def test_a_budget_below_one_is_refused(clean_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = clean_batch
    for budget in (0, None):
        with pytest.raises(ValueError, match="query budget of at least 1"):
            NES().run(
                lambda z, idx=None: z, x, y, eps=EPS, budget=budget, generator=torch.Generator()
            )
    with pytest.raises(RBError, match="budget must be at least 1"):
        Runner(budget=0)
