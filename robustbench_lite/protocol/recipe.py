"""How the runner makes each copy of a model it needs: built fresh by the model's own factory and
filled with the recorded weights (`load_state_dict`), never deep-copied from another copy.

A deep copy runs the model's own `__setstate__`, so a model can count its copies and answer the
attack's copy differently from the grader's; fresh builds give it nothing to count, and the
runner re-predicts every adversarial example on both copies (evaluate.py) to catch what is left.
State a model keeps outside its weights and buffers (inputs it memorises) is not pinned by this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from robustbench_lite.errors import RBError, guarded


@dataclass(frozen=True)
class ModelRecipe:
    """A model's factory, its recorded weights and the device it computes on."""

    name: str  # the defense (row) it belongs to, for error messages
    build: Callable[[], nn.Module]
    state: Mapping[str, torch.Tensor]
    device: torch.device | str = "cpu"

    def make(self) -> nn.Module:
        """A fresh instance: built, filled with the recorded weights, in eval mode, frozen."""
        with guarded(f"building the model of {self.name}"):
            model = self.build()
        if not isinstance(model, nn.Module):
            raise RBError(f"the factory of {self.name} returned {type(model).__name__}")
        with guarded(f"loading the weights of {self.name}"):
            # Its own copy of every tensor, assigned (not copied into whatever the build made, so
            # no instance shares storage with another and the build's device does not matter).
            state = {k: v.detach().clone() for k, v in self.state.items()}
            model.load_state_dict(state, strict=True, assign=True)
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            return model.to(self.device)


def recipe_of(
    name: str, build: Callable[[], nn.Module], model: nn.Module, device: torch.device | str
) -> ModelRecipe:
    """The recipe of a trained `model`: its weights as they are now, made on `device`."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return ModelRecipe(name, build, state, device)
