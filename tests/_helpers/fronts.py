"""A zero-gradient front step of identity value (8-bit rounding) for BPDA's tests: attacked
through BPDA, a model behind it gives the attacks its classifier's gradient."""

from __future__ import annotations

import copy

import torch
from torch import nn

from robustbench_lite.protocol.bpda import Fronted, FrontStep, route_through_approximation


def quantise(x: torch.Tensor) -> torch.Tensor:
    """8-bit rounding: the image to the eye, a zero gradient to autograd."""
    return torch.round(x * 255) / 255


def fronted(model: nn.Module, bpda: bool) -> nn.Module:
    """A copy of `model` behind `quantise`, declared; switched to BPDA when `bpda`."""
    out = Fronted(FrontStep(quantise, name="identity"), copy.deepcopy(model)).eval()
    if bpda:
        route_through_approximation(out, "test")
    return out
