"""One attack run through the runner's counter, and the distances a minimal attack's tests read
(shared by the FMN and FAB tests)."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.oracle import QueryCounter


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
