"""Defense `bit-depth`: bit-depth reduction in front of the undefended model (Xu, Evans & Qi 2018,
"Feature squeezing: detecting adversarial examples in deep neural networks"; 1 bit on MNIST).

No training: the classifier is `none`'s, with the zoo's weights. The rounding has a zero gradient
almost everywhere, so plain white-box attacks see nothing; it is declared as a front step, and
BPDA with the identity (Athalye et al. 2018, section 4.1) attacks the classifier through it."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from robustbench_lite.api import Defense, Fronted, FrontStep, between, hp, plugin
from robustbench_lite.defenses.standard import Standard


def reduce_bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Each pixel rounded to the nearest of 2**bits evenly spaced levels in [0, 1]."""
    levels = 2**bits - 1
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels


@plugin
class BitDepth(Defense):
    """The `none` model behind a `bits`-bit quantisation of its input."""

    name = "bit-depth"
    weights_from = "none"

    bits: int = hp(1, between(1, 8))

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        front = FrontStep(partial(reduce_bit_depth, bits=self.bits), name="identity")
        return Fronted(front, Standard().build(num_classes, shape))

    def classifier_of(self, model: nn.Module) -> nn.Module:
        assert isinstance(model, Fronted)
        return model.classifier

    def front_step(self) -> str:
        return "identity"

    def fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> None:
        """Never called: the weights are `none`'s (`weights_from`)."""
        raise NotImplementedError("bit-depth is not trained: it takes none's weights")
