"""Defense `none`: the undefended baseline, the suite's standard architecture (the CNN for
grayscale images, a small ResNet for colour) trained with cross-entropy."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from robustbench_lite.api import Defense
from robustbench_lite.defenses._common.models import architecture
from robustbench_lite.defenses._common.training import fit_defense


class Standard(Defense):
    """No defense: the reference every robust model is compared against."""

    name = "none"
    profiles: ClassVar = {"quick": {"epochs": 2}, "paper": {"epochs": 20}}

    def __init__(
        self, *, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, width: int = 32
    ) -> None:
        if epochs < 1 or batch_size < 1 or width < 1:
            raise ValueError("epochs, batch_size and width must be positive")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.width = width

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        return architecture(num_classes, shape, self.width)

    def fit(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator,
        progress: bool,
        eps: float = 0.3,
    ) -> None:
        fit_defense(self, model, x, y, generator=generator, progress=progress)
