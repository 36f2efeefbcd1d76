"""Synthetic data of other shapes than MNIST's, made by the tests: colour images of a class
template plus noise, easy enough to learn in seconds (tests/attacks/test_shapes.py and
tests/defenses/test_shapes.py run every plugin on them)."""

from __future__ import annotations

import functools

import torch

from robustbench_lite.running.own.data import TensorSource

#: (name, shape, classes): CIFAR's shape, and a non-square one with another number of classes.
SHAPES = [("synthetic-32", (3, 32, 32), 10), ("synthetic-40x48", (3, 40, 48), 7)]


@functools.cache
def synthetic(name: str, shape: tuple[int, int, int], classes: int) -> TensorSource:
    """Per class a blocky random template (3x3 blocks of 0.1 or 0.9 per channel, smoothed); each
    image is its template plus Gaussian noise, clipped to [0, 1]; 300 training, 60 test."""
    g = torch.Generator().manual_seed(sum(shape) * 31 + classes)
    coarse = (torch.rand(classes, shape[0], 3, 3, generator=g) > 0.5).float() * 0.8 + 0.1
    templates = torch.nn.functional.interpolate(coarse, size=shape[1:], mode="bilinear")

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % classes
        return (templates[y] + 0.1 * torch.randn(n, *shape, generator=g)).clamp(0, 1), y

    return TensorSource(name, draw(60), draw(300), num_classes=classes)
