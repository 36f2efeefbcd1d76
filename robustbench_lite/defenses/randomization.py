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

from robustbench_lite.defenses._common.models import mnist_cnn
from robustbench_lite.defenses._common.training import train
from robustbench_lite.protocol import Defense, fork_rng, resize_pad

MODES = ("resize", "noise")


class RandomResizePad(nn.Module):
    """Per sample: resize to a random size in [low, high), place at a random offset on a zero
    canvas x canvas (the paper on ImageNet: 299 -> [310, 331) -> 331)."""

    def __init__(self, low: int, high: int, canvas: int) -> None:
        super().__init__()
        self.low, self.high, self.canvas = low, high, canvas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        size = torch.randint(self.low, self.high, (n,), device=x.device)
        room = (self.canvas - size + 1).to(torch.float64)  # offsets 0..canvas-size
        left = (torch.rand(n, dtype=torch.float64, device=x.device) * room).floor()
        top = (torch.rand(n, dtype=torch.float64, device=x.device) * room).floor()
        return resize_pad(x, size, left, top, self.canvas)


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise to every pixel (noise injection)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


class Randomization(Defense):
    """A random input transform, then the standard CNN (for 34x34 inputs in resize mode)."""

    name = "randomization"
    randomized = True
    profiles: ClassVar = {"quick": {"epochs": 2, "draws": 5}, "paper": {"epochs": 20}}

    def __init__(
        self,
        *,
        mode: str = "resize",
        resize_min: int = 28,
        resize_max: int = 34,
        canvas: int = 34,
        sigma: float = 0.3,
        draws: int = 11,
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-3,
        width: int = 32,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 1 <= resize_min < resize_max <= canvas + 1:
            raise ValueError(
                "need 1 <= resize_min < resize_max <= canvas + 1 (sizes drawn from "
                f"[resize_min, resize_max)), got {resize_min}, {resize_max}, canvas {canvas}"
            )
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if draws < 1 or epochs < 1 or batch_size < 1 or width < 1:
            raise ValueError("draws, epochs, batch_size and width must be positive")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.mode = mode
        self.resize_min = resize_min
        self.resize_max = resize_max
        self.canvas = canvas
        self.sigma = sigma
        self.draws = draws
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.width = width

    def build(self, num_classes: int) -> nn.Module:
        if self.mode == "noise":
            return nn.Sequential(GaussianNoise(self.sigma), mnist_cnn(num_classes, self.width))
        transform = RandomResizePad(self.resize_min, self.resize_max, self.canvas)
        return nn.Sequential(transform, mnist_cnn(num_classes, self.width, input_size=self.canvas))

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
