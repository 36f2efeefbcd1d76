"""Defense `randomization`: random resize and random zero padding at inference (Xie et al. 2018,
"Mitigating adversarial effects through randomization"), or Gaussian noise injection
(`mode=noise`), in front of a classifier trained on the same random transform.

The randomness comes from torch's global RNG, which the runner seeds per cell, so a run is
reproducible; predictions are the majority over `draws` forward passes.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from robustbench_lite.api import (
    Defense,
    at_least,
    fork_rng,
    hp,
    one_of,
    plugin,
    positive,
    resize_pad,
)
from robustbench_lite.defenses._common.models import architecture
from robustbench_lite.defenses._common.training import train

MODES = ("resize", "noise")


class RandomResizePad(nn.Module):
    """Per sample: resize to a random height in [height, high) (the width in proportion), place
    at a random offset on a zero canvas (the paper on ImageNet: 299 -> [310, 331) -> 331)."""

    def __init__(self, shape: tuple[int, int, int], high: int, canvas: tuple[int, int]) -> None:
        super().__init__()
        self.height, self.width = shape[1], shape[2]
        self.high, self.canvas = high, canvas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        (ch, cw), h, w = self.canvas, self.height, self.width
        size = torch.randint(h, self.high, (n,), device=x.device)
        cols = size if w == h else (size * w + h // 2) // h  # the width, in proportion
        room_x = (cw - cols + 1).to(torch.float64)  # offsets 0..canvas-size
        room_y = (ch - size + 1).to(torch.float64)
        left = (torch.rand(n, dtype=torch.float64, device=x.device) * room_x).floor()
        top = (torch.rand(n, dtype=torch.float64, device=x.device) * room_y).floor()
        return resize_pad(x, size, left, top, ch, width=cols, canvas_width=cw)


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise to every pixel (noise injection)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


@plugin
class Randomization(Defense):
    """A random input transform, then the standard architecture (for the canvas in resize mode:
    34x34 for MNIST's 28x28; the resize range and canvas are multiples of the image's side)."""

    name = "randomization"
    randomized = True
    profiles: ClassVar = {"quick": {"epochs": 2, "draws": 5}, "paper": {"epochs": 20}}

    mode: str = hp("resize", one_of(MODES))
    resize_max: float = hp(34 / 28)
    canvas: float = hp(34 / 28)
    sigma: float = hp(0.3, positive())
    draws: int = hp(11, at_least(1))
    epochs: int = hp(10, at_least(1))
    batch_size: int = hp(64, at_least(1))
    lr: float = hp(1e-3, positive())
    width: int = hp(32, at_least(1))

    def validate(self) -> None:
        if not 1 < self.resize_max <= self.canvas:
            raise ValueError(
                "need 1 < resize_max <= canvas (multiples of the image side: sizes are drawn from "
                f"[side, resize_max x side)), got {self.resize_max} and canvas {self.canvas}"
            )

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        if self.mode == "noise":
            return nn.Sequential(
                GaussianNoise(self.sigma), architecture(num_classes, shape, self.width)
            )
        c, h, w = shape
        canvas = (round(h * self.canvas), round(w * self.canvas))
        transform = RandomResizePad(shape, round(h * self.resize_max), canvas)
        return nn.Sequential(transform, architecture(num_classes, (c, *canvas), self.width))

    def prediction_draws(self) -> int:
        return self.draws

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
        # The transform draws from the global RNG: seed it from `generator`, restore it after.
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with fork_rng(x.device):
            torch.manual_seed(seed)
            train(
                model,
                x,
                y,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                generator=generator,
                progress=progress,
                desc=f"train randomization ({self.mode})",
            )
