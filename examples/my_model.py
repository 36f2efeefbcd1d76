"""An example of "your own model": any function returning a torch nn.Module that maps images
(N, 1, 28, 28), floats in [0, 1], to logits (N, 10). `rb run --model examples/my_model.py:build`
calls `build()` and loads the weights given with `--weights`."""

from __future__ import annotations

from torch import nn


def build() -> nn.Sequential:
    """A small CNN: two convolutions with max-pooling, then a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )
