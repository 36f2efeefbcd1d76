"""The boundary attack and the low-frequency plugin on the quick baseline."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.attacks.boundary import Boundary
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, instantiate

EPS = 1.5


def _run(attack: Attack, model, x: torch.Tensor, y: torch.Tensor, budget: int):
    counter = QueryCounter(model, len(x), num_classes=10)
    gen = torch.Generator().manual_seed(0)
    x_adv = attack.run(counter.view(), x, y, eps=EPS, budget=budget, generator=gen).x
    return x_adv, counter.counts


def _l2(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).flatten(1).norm(dim=1)


@pytest.mark.parametrize("name", ["boundary", "lf-boundary"])
def test_distance_shrinks_over_the_run_and_stays_adversarial(
    name: str, baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch[0][:10], clean_batch[1][:10]
    attack = instantiate(attack_class(name), "standard")
    distances = []
    for budget in (30, 300, 1000):  # same seed: each run continues the shorter one's walk
        x_adv, counts = _run(attack, baseline, x, y, budget)
        assert bool((predict(baseline, x_adv) != y).all()), "every result must be adversarial"
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
        assert int(counts.max()) <= budget and int(counts.min()) >= budget - 1
        distances.append(_l2(x, x_adv))
    start, mid, end = distances
    assert bool((mid <= start + 1e-6).all()) and bool((end <= mid + 1e-6).all())
    assert float(end.median()) < 0.7 * float(start.median())


def test_uses_only_the_top1_label(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch[0][:8], clean_batch[1][:8]

    def one_hot(z: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(baseline(z).argmax(dim=1), 10).float()

    with_scores, _ = _run(Boundary(), baseline, x, y, 200)
    with_labels, _ = _run(Boundary(), one_hot, x, y, 200)
    assert torch.equal(with_scores, with_labels)


def test_falls_back_on_another_class_when_noise_never_fools(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch[0][:8], clean_batch[1][:8]
    noise_class = int(y[0])

    def model(z: torch.Tensor) -> torch.Tensor:
        # Uniform noise (no dark background) always lands in the first sample's class.
        noisy = (z > 0.02).double().mean(dim=(1, 2, 3)) > 0.9
        fixed = nn.functional.one_hot(torch.full((len(z),), noise_class), 10).float() * 1e3
        return torch.where(noisy[:, None], fixed, baseline(z))

    x_adv, _ = _run(Boundary(init_tries=3), model, x, y, 60)
    assert bool((model(x_adv).argmax(dim=1) != y).all())
    assert bool((_l2(x, x_adv) > 0).all())


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"spherical_step": 0.0}, "spherical_step must lie in"),
        ({"source_step": 0.9}, "source_step must lie in"),
        ({"step_adaptation": 1.0}, "step_adaptation must be above 1"),
        ({"init_tries": -1}, "init_tries must be non-negative"),
        ({"init_tries": 0, "init_neighbors": 0}, r"init_tries \+ init_neighbors must be"),
    ],
)
def test_bad_hyper_parameters_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Boundary(**settings)
    with pytest.raises(RBError, match=message):
        instantiate(attack_class("lf-boundary"), "quick", settings)


def test_a_budget_below_one_is_refused(clean_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = clean_batch
    with pytest.raises(ValueError, match="query budget of at least 1"):
        Boundary().run(lambda z, idx=None: z, x, y, eps=EPS, budget=0, generator=torch.Generator())


def test_low_frequency_plugin_takes_its_base_traits_and_hyper_parameters() -> None:
    lf_nes = instantiate(attack_class("lf-nes"), "quick", {"sigma": 0.01, "ratio": 0.5})
    assert (lf_nes.threat_model, lf_nes.knowledge, lf_nes.minimal) == ("linf", "scores", False)
    assert lf_nes.config()["base"] == "nes"
    assert lf_nes.config()["sigma"] == 0.01 and lf_nes.config()["ratio"] == 0.5
    lf_ba = instantiate(attack_class("lf-boundary"), "quick")
    assert (lf_ba.threat_model, lf_ba.knowledge, lf_ba.minimal) == ("l2", "labels", True)
    assert attack_class("lf-nes").knowledge == "scores"
    assert attack_class("lf-nes").threat_model == "linf"
    generic = instantiate(attack_class("low-frequency"), "quick", {"base": "nes"})
    assert generic.knowledge == "scores"
    assert set(attack_class("lf-nes").hyperparameters()) == {"base", "ratio"} | set(
        attack_class("nes").hyperparameters()
    )
    for settings, message in (
        ({"ratio": 0.0}, "ratio must lie in"),
        ({"ratio": 1.5}, "ratio must lie in"),
        ({"base": "pgd"}, "base must be one of"),
    ):
        with pytest.raises(RBError, match=message):
            instantiate(attack_class("low-frequency"), "quick", settings)


def test_starts_from_the_closest_candidate_and_neighbors_beat_noise(
    baseline: nn.Module, clean_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = clean_batch[0][:40], clean_batch[1][:40]
    medians = []
    for attack in (Boundary(init_neighbors=0), Boundary(init_tries=0), Boundary()):
        counter = QueryCounter(baseline, len(x), num_classes=10)
        spent = torch.zeros(len(x), dtype=torch.int64)
        gen = torch.Generator().manual_seed(0)
        start, found = attack.start(counter.view(), x, y, spent, 1000, gen)
        assert bool(found.all()) and torch.equal(spent, counter.counts)
        assert bool((predict(baseline, start) != y).all())
        medians.append(float(_l2(x, start).median()))
    noise, neighbors, both = medians
    assert neighbors < 0.9 * noise
    assert both <= neighbors + 1e-6
