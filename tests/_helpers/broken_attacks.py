"""Deliberately broken attacks, each with one bug that makes an evaluation optimistic: the
indicators of attack failure (Pintor et al. 2022) must flag each, and the attack ranking must put
each below `pgd` (tests/report/test_ranking.py)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from robustbench_lite.protocol.contracts import Attack, QueryModel


class _Broken(Attack):
    """PGD on cross-entropy in the Linf ball, with one bug chosen by the subclass."""

    threat_model = "linf"
    knowledge: ClassVar = "gradient"
    steps: ClassVar[int] = 20
    step: ClassVar[float] = 0.1  # of eps

    def __init__(self) -> None:
        pass

    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        start = torch.rand(x.shape, generator=generator, device=x.device)
        xt = (x + eps * (start * 2 - 1)).clamp(0, 1)
        first = xt.clone()
        iterates = []
        for _ in range(self.steps):
            xt.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(xt), y)
            (grad,) = torch.autograd.grad(loss, xt)
            xt = (x + (xt.detach() + self.step * eps * grad.sign() - x).clamp(-eps, eps)).clamp(
                0, 1
            )
            iterates.append(xt)
        return self.returned(model, x, y, eps, first, iterates)

    def returned(self, model, x, y, eps, first, iterates):
        return iterates[-1]


class FirstIterate(_Broken):
    """Runs its steps and returns the random start it began from."""

    name = "broken-first"

    def returned(self, model, x, y, eps, first, iterates):
        return first


class TinyStep(_Broken):
    """A step size 100x too small: still climbing when its steps run out."""

    name = "broken-tiny"
    step: ClassVar[float] = 0.001


class LastNotBest(_Broken):
    """Ends with a step the wrong way (a sign slip) and returns that last point, not its best."""

    name = "broken-last"

    def returned(self, model, x, y, eps, first, iterates):
        xt = iterates[-1].requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xt), y)
        (grad,) = torch.autograd.grad(loss, xt)
        return (x + (xt.detach() - 2 * eps * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
