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


def ibp_cnn(size: str = "small", num_classes: int = 10) -> nn.Sequential:
    """Gowal et al. 2018's MNIST models (Table 1; the paper's code's padding): small, medium, large.

    Convolutions are (channels, kernel, stride); every hidden layer is followed by a ReLU.
    """
    specs: dict[str, tuple[list[tuple[int, int, int]], list[int], int]] = {
        # small: conv16 4x4+2, conv32 4x4+1, fc100; 'valid' padding
        "small": ([(16, 4, 2), (32, 4, 1)], [100], 0),
        # medium: conv32 3x3+1, conv32 4x4+2, conv64 3x3+1, conv64 4x4+2, fc512, fc512; 'valid'
        "medium": ([(32, 3, 1), (32, 4, 2), (64, 3, 1), (64, 4, 2)], [512, 512], 0),
        # large: conv64 3x3+1, conv64 3x3+1, conv128 3x3+2, conv128 3x3+1, conv128 3x3+1, fc512
        "large": ([(64, 3, 1), (64, 3, 1), (128, 3, 2), (128, 3, 1), (128, 3, 1)], [512], 1),
    }
    if size not in specs:
        raise ValueError(f"size must be one of {', '.join(specs)}, got {size!r}")
    convs, hidden, padding = specs[size]
    modules: list[nn.Module] = []
    channels, side = 1, 28
    for out, kernel, stride in convs:
        modules += [nn.Conv2d(channels, out, kernel, stride=stride, padding=padding), nn.ReLU()]
        channels, side = out, (side + 2 * padding - kernel) // stride + 1
    modules.append(nn.Flatten())
    features = channels * side * side
    for width in hidden:
        modules += [nn.Linear(features, width), nn.ReLU()]
        features = width
    modules.append(nn.Linear(features, num_classes))
    return nn.Sequential(*modules)
