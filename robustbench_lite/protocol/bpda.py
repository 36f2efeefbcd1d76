"""Shattered gradients, answered: a declared non-differentiable front step and its Backward Pass
Differentiable Approximation (BPDA; Athalye, Carlini & Wagner 2018, "Obfuscated gradients give a
false sense of security", section 4.1).

A model puts its non-differentiable step (bit-depth reduction, thermometer encoding, a layer whose
backward is zero) in a `FrontStep`. Its forward pass is always the true step: every answer, every
verdict and every diagnostic sees it. Only the attack's own instance of the model, in a cell run
through BPDA, is switched (`route_through_approximation`) so that its backward pass differentiates
the approximation instead (the identity unless one is given); the plain cells (`@no-bpda`) keep
the step's own gradient, zero where autograd has no path, as a naive attacker would see it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robustbench_lite.errors import RBError

Step = Callable[[torch.Tensor], torch.Tensor]
#: The cell-name suffix of a white-box cell run on the step's own gradient (no BPDA).
NO_BPDA = "@no-bpda"
#: The recorded approximation of a plain cell.
PLAIN = "none"


class _Approximated(torch.autograd.Function):
    """Forward: the true step, bit for bit. Backward: the vector-Jacobian product of the
    approximation at the same input."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, step: Step, approximation: Step | None) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.approximation = approximation
        with torch.no_grad():
            return step(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (x,) = ctx.saved_tensors
        if ctx.approximation is None:  # the identity: the step's output has the input's shape
            return grad, None, None
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(ctx.approximation(xg), xg, grad, allow_unused=True)
        return (torch.zeros_like(x) if g is None else g), None, None


class FrontStep(nn.Module):
    """A declared non-differentiable step in front of a classifier, with `approximation` (a
    differentiable stand-in for BPDA's backward pass; None: the identity) and `name` (what a
    cell records as the approximation it ran through). It holds no weights or buffers."""

    def __init__(self, step: Step, approximation: Step | None = None, *, name: str) -> None:
        super().__init__()
        if not callable(step) or (approximation is not None and not callable(approximation)):
            raise RBError("a front step and its approximation must be callables (tensor -> tensor)")
        self.step = step
        self.approximation = approximation
        self.name = name
        self.bpda = False  # set on the attack's instance only, by the runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bpda and torch.is_grad_enabled() and x.requires_grad:
            out = _Approximated.apply(x, self.step, self.approximation)
            if self.approximation is None and out.shape != x.shape:
                raise RBError(
                    f"the front step {self.name} changes the shape {tuple(x.shape)} -> "
                    f"{tuple(out.shape)}: the identity cannot stand in for it, declare an "
                    "approximation (--bpda module:function)"
                )
            return out
        out = self.step(x)
        if x.requires_grad and not out.requires_grad:  # no path at all: a zero gradient (made
            # by the product's backward, so it is a tensor of its own, not an expanded view)
            zero = x.mul(0.0).reshape(len(x), -1).sum(1)
            out = out + zero.reshape(-1, *[1] * (out.dim() - 1))
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class Fronted(nn.Module):
    """x -> classifier(front(x)): a classifier behind its declared front step; the step holds no
    weights, so the state is the classifier's under `classifier.`."""

    def __init__(self, front: FrontStep, classifier: nn.Module) -> None:
        super().__init__()
        self.front = front
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.front(x))


def front_steps(model: nn.Module) -> list[FrontStep]:
    """The declared front steps inside `model`."""
    return [m for m in model.modules() if isinstance(m, FrontStep)]


def route_through_approximation(model: nn.Module, defense: str) -> str:
    """Switch every front step of `model` (the attack's instance) to BPDA; the approximation's
    recorded name. A model that declares none cannot be attacked through BPDA."""
    steps = front_steps(model)
    if not steps:
        raise RBError(
            f"{defense} declares a front step for BPDA but its model holds no FrontStep module"
        )
    for step in steps:
        step.bpda = True
    return approximation_name(steps)


def approximation_name(steps: list[FrontStep]) -> str:
    """What a cell records: the front steps' names, in model order."""
    return "+".join(step.name for step in steps)
