"""A user's CIFAR-shaped model, as `rb run --model tests/_helpers/cifar_model.py:build` names it
(tests/running/test_cifar_shaped.py trains it on synthetic data)."""

from __future__ import annotations

import torch
from torch import nn

MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.2, 0.3)


def build() -> nn.Module:
    """A small CNN for 3x32x32 images."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


class Standardized(nn.Module):
    """The same network with the standardization inside it: (x - MEAN) / STD, then the CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.model = build()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)
