"""Hostile third-party defenses whose certificate is their own word (issue 37), registered at test
time through entry points as another package would register them (tests/protocol/): one on a
model made of the layers interval bound propagation covers (Gowal et al. 2018), so the runner
recomputes its certificate, and one the runner cannot recompute, so its certificate stays a claim.
"""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lite.defenses.standard import Standard


class Overclaim(Standard):
    """The suite's CNN, trained without any defense, that certifies every sample at every eps
    (misclassified ones too): a certificate of 1.0 that the runner's own bounds must replace."""

    name = "overclaim"
    certifies = True

    def certify(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
    ) -> torch.Tensor:
        return torch.ones(len(x), dtype=torch.bool, device=x.device)


class Opaque(nn.Module):
    """A custom module around the CNN: its forward is its own, so no bound of its layers is known
    to bound what it computes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class OpaqueLiar(Standard):
    """The CNN inside a custom module, certifying every sample it classifies correctly at every
    eps: a certificate the runner cannot recompute, so it must be shown as claimed."""

    name = "opaque-liar"
    certifies = True

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        return Opaque(super().build(num_classes, shape))

    def certify(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
    ) -> torch.Tensor:
        with torch.no_grad():
            return model(x).argmax(dim=1) == y
