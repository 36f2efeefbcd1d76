"""Hostile user models for `rb run --model tests/_helpers/hostile_models.py:...`
(tests/protocol/test_second_line.py), each the suite's CNN (weights from `--weights`) with one
trick."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import torch
from torch import nn

from robustbench_lite.defenses._common.models import mnist_cnn


class CopyCounter(nn.Module):
    """Counts the deep copies made of it and answers every copy from the third on with rolled
    logits: the copy order of a runner that deep-copies its grader into the attacked model and
    the diagnostics' model, so the attack sees a wrong model and the grader an honest one."""

    copies: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.net = mnist_cnn()
        self.lies = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        CopyCounter.copies += 1
        self.lies = CopyCounter.copies >= 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.roll(1, dims=1) if self.lies else out


class Exits(nn.Module):
    """Calls sys.exit(0) in its forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mnist_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sys.exit(0)


class GradFails(nn.Module):
    """Works under no_grad, raises a multi-line error once autograd is on."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mnist_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("no gradients here\n  (a second line)\n  (and a third)")
        return self.net(x)


def copy_counter() -> nn.Module:
    return CopyCounter()


def exits() -> nn.Module:
    return Exits()


def grad_fails() -> nn.Module:
    return GradFails()
