"""One attack run through the runner's counter, and the distances a minimal attack's tests read
(shared by the FMN and FAB tests), and their comparison with the boundary attack."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, instantiate


def run_counted(
    attack: Attack,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    budget: int | None = None,
    eps: float = 0.3,
    stochastic: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attack's points and the per-sample queries the counter charged (seed 0)."""
    counter = QueryCounter(
        model,
        len(x),
        num_classes=int(model(x[:1]).shape[1]),
        knowledge=attack.knowledge,
        budget=budget,
        stochastic=stochastic,
    )
    gen = torch.Generator().manual_seed(0)
    x_adv = attack.run(counter.view(), x, y, eps=eps, budget=budget, generator=gen).x
    counter.close()
    counter.check()
    return x_adv, counter.counts


def against_boundary(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float, int]:
    """Issue 41's comparison: the minimal L2 attack `name` (quick profile) and the boundary
    attack given the same queries per sample; their median L2 distances, each over the samples
    it fools (the minimal attack must fool all), and the queries per sample."""
    x_min, spent = run_counted(instantiate(attack_class(name), "quick"), model, x, y)
    per_sample = int(spent.max())
    assert int(spent.min()) == per_sample  # every sample charged the same
    boundary = instantiate(attack_class("boundary"), "quick")
    x_ba, spent_ba = run_counted(boundary, model, x, y, budget=per_sample, eps=1.5)
    assert int(spent_ba.max()) <= per_sample
    min_ok, ba_ok = predict(model, x_min) != y, predict(model, x_ba) != y
    assert bool(min_ok.all())
    return float(l2(x, x_min)[min_ok].median()), float(l2(x, x_ba)[ba_ok].median()), per_sample


def l2(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).flatten(1).norm(dim=1)


def linf(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return (x_adv - x).flatten(1).abs().amax(dim=1)


class Linear(nn.Module):
    """Two classes, logit difference w.x + b: the minimal perturbation is known in closed form
    (|w.x + b| / ||w||_2 in L2, / ||w||_1 in Linf) while the box [0, 1] does not bind."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([score, torch.zeros_like(score)], dim=1)
