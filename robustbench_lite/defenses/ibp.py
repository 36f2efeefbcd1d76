"""Defense `ibp`: verifiably robust training with interval bound propagation, Gowal et al. 2018,
"On the effectiveness of interval bound propagation for training verifiably robust models".

Loss κ·CE(z, y) + (1−κ)·CE(ẑ, y), ẑ the worst-case logits (margin form) over the eps-ball. After a
warm-up of clean training, eps ramps linearly from 0 to `train_scale` times the data's Linf budget
(Gowal et al.: 0.4 for MNIST's 0.3) while κ falls from 1 to
`kappa`; the model certifies at test time with the same bounds.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lite.api import (
    Defense,
    at_least,
    between,
    hp,
    one_of,
    optional,
    plugin,
    positive,
)
from robustbench_lite.defenses._common import ibp
from robustbench_lite.defenses._common.models import ibp_cnn
from robustbench_lite.defenses._common.training import fit_defense


def ramp(progress: float, warmup: float, length: float) -> float:
    """0 during the warm-up, then linear to 1 over `length` (fractions of training), then 1."""
    if progress < warmup:
        return 0.0
    return 1.0 if length <= 0 else min(1.0, (progress - warmup) / length)


@plugin
class IBP(Defense):
    """Interval-bound-propagation training; certifies with the same bounds (margin form)."""

    name = "ibp"
    certifies = True
    profiles: ClassVar = {
        # Enough steps for a small budget to learn anything: smaller batches, test eps, no decay.
        "quick": {
            "epochs": 8,
            "batch_size": 50,
            "train_scale": 1.0,
            "warmup": 0.1,
        },
        # Gowal et al.'s MNIST schedule: 60k steps of batch 100, 2k warm-up, 10k ramp.
        "paper": {"epochs": 1500, "warmup": 2 / 60, "ramp_length": 10 / 60},
    }

    size: str = hp("small", one_of(("small", "medium", "large")))
    epochs: int = hp(60, at_least(1))
    batch_size: int = hp(100, at_least(1))
    lr: float = hp(1e-3, positive())
    train_scale: float = hp(4 / 3, between(0, 4, open_low=True))
    kappa: float = hp(0.5, between(0, 1))
    warmup: float = hp(0.05, between(0, 1, open_high=True))
    ramp_length: float = hp(0.5, between(0, 1))
    lr_decay_at: float | None = hp(None, optional(between(0, 1, open_low=True, open_high=True)))

    def validate(self) -> None:
        self.train_eps = 0.4  # set by `fit` from the data's Linf budget

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        return ibp_cnn(self.size, num_classes, shape)

    def schedule(self, progress: float) -> tuple[float, float]:
        """(eps, κ) at a point of training (progress from 0 to 1)."""
        t = ramp(progress, self.warmup, self.ramp_length)
        return t * self.train_eps, 1.0 - t * (1.0 - self.kappa)

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, progress: float
    ) -> torch.Tensor:
        eps, kappa = self.schedule(progress)
        clean = F.cross_entropy(model(x), y)
        if eps == 0.0:
            return clean
        worst = ibp.margin_upper(model, x, y, eps)
        return kappa * clean + (1.0 - kappa) * F.cross_entropy(worst, y)

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
        self.train_eps = min(1.0, self.train_scale * eps)
        fit_defense(self, model, x, y, generator=generator, progress=progress, loss=self.loss)

    def certify(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
    ) -> torch.Tensor:
        return ibp.certify(model, x, y, eps)
