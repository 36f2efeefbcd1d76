"""Defense `thermometer`: thermometer encoding (Buckman, Roy, Raffel & Goodfellow 2018,
"Thermometer encoding: one hot way to resist adversarial examples"), adversarially trained.

Each pixel becomes `levels` bits, bit i set when the pixel exceeds i/levels: a step function, so
the model's input gradient is zero almost everywhere. The encoding is declared as a front step
whose BPDA approximation is the paper's own relaxation, the soft thermometer
min(max(levels * x - i, 0), 1) (Athalye et al. 2018, section 4.1 and 5.2, used it to break the
defense). Training is Madry et al.'s PGD adversarial training as `pgd-at` runs it (adversarial
batches only), the training attack's gradients taken through that relaxation (Buckman et al.
trained against their LS-PGA, which ascends in the same relaxed encoding; this is its simpler
stand-in). The classifier is the suite's CNN on every shape (quick recipe: 97.6% clean on 500
mnist-5k test digits; the small ResNet that `architecture` picks for 16 input channels collapsed
to 34% with adversarial batches alone)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from robustbench_lite.api import (
    Fronted,
    FrontStep,
    at_least,
    between,
    hp,
    non_negative,
    plugin,
    positive,
    route_through_approximation,
)
from robustbench_lite.defenses._common.models import cnn
from robustbench_lite.defenses.alp import ALP

APPROXIMATION = "soft-thermometer"


def thresholds(levels: int, like: torch.Tensor) -> torch.Tensor:
    """The levels' thresholds i/levels, shaped to broadcast over (N, C, 1, H, W)."""
    return torch.arange(levels, dtype=like.dtype, device=like.device).view(1, 1, -1, 1, 1) / levels


def thermometer(x: torch.Tensor, levels: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C * levels, H, W): bit i of a pixel is 1 where it exceeds i/levels."""
    bits = (x.unsqueeze(2) > thresholds(levels, x)).to(x.dtype)
    return bits.flatten(1, 2)


def soft_thermometer(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The relaxation: min(max(levels * (x - i/levels), 0), 1) per level (differentiable)."""
    soft = (levels * (x.unsqueeze(2) - thresholds(levels, x))).clamp(0.0, 1.0)
    return soft.flatten(1, 2)


class _Encoding:
    """The thermometer at `levels` as a picklable callable (the front step's forward)."""

    def __init__(self, levels: int, soft: bool) -> None:
        self.levels, self.soft = levels, soft

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (soft_thermometer if self.soft else thermometer)(x, self.levels)


@plugin
class Thermometer(ALP):
    """PGD adversarial training of the suite's architecture on thermometer-encoded inputs."""

    name = "thermometer"
    # Bits of a 16-fold wider input learn slower than pixels: ALP's lr of 1e-3 and 4 epochs left
    # about 50% clean accuracy even without attacks; 3e-3 and twice the epochs reach 97%.
    profiles: ClassVar = {
        "quick": {"epochs": 8, "steps": 5, "width": 16, "lr_decay_at": None},
        "paper": {"epochs": 100, "steps": 40, "rel_step_size": 0.01 / 0.3, "ramp_length": 0.0},
    }

    pairing: float = hp(0.0, non_negative(), doc="λ of ALP's logit pairing (0: Madry et al.)")
    clean_weight: float = hp(0.0, between(0, 1, open_high=True))
    levels: int = hp(16, at_least(2), doc="bits per pixel (Buckman et al.: 16)")
    lr: float = hp(3e-3, positive())

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        self.num_classes = num_classes
        channels, height, width = shape
        front = FrontStep(
            _Encoding(self.levels, soft=False),
            _Encoding(self.levels, soft=True),
            name=APPROXIMATION,
        )
        # The suite's CNN on every shape: the encoding already makes `levels` input channels
        # per colour channel (Buckman et al.'s CIFAR model, a wide ResNet, is beyond this suite).
        classifier = cnn(num_classes, (channels * self.levels, height, width), self.width)
        return Fronted(front, classifier)

    def front_step(self) -> str:
        return APPROXIMATION

    def fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> None:
        """PGD adversarial training, its attack differentiating the soft thermometer."""
        route_through_approximation(model, self.name)
        try:
            super().fit(model, x, y, **kwargs)
        finally:
            for step in model.modules():
                if isinstance(step, FrontStep):
                    step.bpda = False
