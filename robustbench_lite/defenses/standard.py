"""Defense `none`: the undefended baseline, the suite's standard architecture (the CNN for
grayscale images, a small ResNet for colour) trained with cross-entropy."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from robustbench_lite.api import (
    Defense,
    at_least,
    hp,
    plugin,
    positive,
)
from robustbench_lite.defenses._common.models import architecture
from robustbench_lite.defenses._common.training import fit_defense


@plugin
class Standard(Defense):
    """No defense: the reference every robust model is compared against."""

    name = "none"
    profiles: ClassVar = {"quick": {"epochs": 2}, "paper": {"epochs": 20}}

    epochs: int = hp(10, at_least(1))
    batch_size: int = hp(64, at_least(1))
    lr: float = hp(1e-3, positive())
    width: int = hp(32, at_least(1))

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
