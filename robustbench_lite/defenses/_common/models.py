"""Model architectures shared by defenses (defined once, reused), for any input shape (C, H, W):
the suite's CNN for grayscale images (28x28 digits), a small ResNet for colour images (CIFAR's
32x32 and any other size), and Gowal et al.'s IBP models."""

from __future__ import annotations

import torch
from torch import nn

Shape = tuple[int, int, int]
MNIST: Shape = (1, 28, 28)


def _conv_out(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


def cnn(num_classes: int, shape: Shape, width: int = 32, hidden: int = 256) -> nn.Sequential:
    """The suite's standard CNN: two stride-2 convolutions and two linear layers.

    Only Conv2d, ReLU, Flatten and Linear, so interval bound propagation covers it as is."""
    channels, height, width_px = shape
    for _ in range(2):  # kernel 4, stride 2, padding 1
        height, width_px = _conv_out(height, 4, 2, 1), _conv_out(width_px, 4, 2, 1)
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * width * height * width_px, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def mnist_cnn(
    num_classes: int = 10, width: int = 32, hidden: int = 256, input_size: int = 28
) -> nn.Sequential:
    """The standard CNN for square grayscale inputs (28x28 by default; e.g. 34 for padded ones):
    a user's `--model robustbench_lite.defenses:mnist_cnn` is the suite's baseline architecture."""
    return cnn(num_classes, (1, input_size, input_size), width, hidden)


def _norm(channels: int) -> nn.BatchNorm2d:
    """Batch norm whose running statistics are the plain average over training (momentum None):
    the short trainings of the quick profile leave no time for an exponential average to settle."""
    return nn.BatchNorm2d(channels, momentum=None)


class _Block(nn.Module):
    """A basic residual block (He et al. 2016): two 3x3 convolutions with batch norm."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            _norm(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def small_resnet(num_classes: int, shape: Shape, width: int = 16) -> nn.Sequential:
    """A small ResNet (He et al. 2016; three stages of one block, widths w, 2w, 4w) for colour
    images of any size: global average pooling makes it independent of H and W."""
    return nn.Sequential(
        nn.Conv2d(shape[0], width, 3, padding=1, bias=False),
        _norm(width),
        nn.ReLU(),
        _Block(width, width, 1),
        _Block(width, 2 * width, 2),
        _Block(2 * width, 4 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )


def architecture(num_classes: int, shape: Shape, width: int = 32) -> nn.Module:
    """The architecture a training defense uses for inputs of `shape`: the CNN for grayscale
    images (today's 28x28 model), a small ResNet (half the width) for colour."""
    if shape[0] == 1:
        return cnn(num_classes, shape, width)
    return small_resnet(num_classes, shape, max(8, width // 2))


def ibp_cnn(size: str = "small", num_classes: int = 10, shape: Shape = MNIST) -> nn.Sequential:
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
    channels, height, width_px = shape
    for out, kernel, stride in convs:
        modules += [nn.Conv2d(channels, out, kernel, stride=stride, padding=padding), nn.ReLU()]
        channels = out
        height = _conv_out(height, kernel, stride, padding)
        width_px = _conv_out(width_px, kernel, stride, padding)
    modules.append(nn.Flatten())
    features = channels * height * width_px
    for width in hidden:
        modules += [nn.Linear(features, width), nn.ReLU()]
        features = width
    modules.append(nn.Linear(features, num_classes))
    return nn.Sequential(*modules)
