"""Model architectures shared by defenses (defined once, reused)."""

from __future__ import annotations

from torch import nn


def mnist_cnn(
    num_classes: int = 10, width: int = 32, hidden: int = 256, input_size: int = 28
) -> nn.Sequential:
    """The suite's standard 28x28 CNN: two stride-2 convolutions and two linear layers.

    Only Conv2d, ReLU, Flatten and Linear, so interval bound propagation covers it as is.
    `input_size` sets the square input it expects (e.g. 34 for padded inputs); 28 by default.
    """
    side = input_size
    for _ in range(2):  # kernel 4, stride 2, padding 1
        side = (side + 2 - 4) // 2 + 1
    return nn.Sequential(
        nn.Conv2d(1, width, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )
