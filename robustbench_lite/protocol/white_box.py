"""A plugin's own model seen as an attack sees a target: for a model the plugin owns (ALP's
model while it trains, the transfer attack's surrogate), never the model under evaluation.
Nothing is counted and nothing is refused: it is the plugin's own forward pass, with the
`QueryModel` face (`num_classes`, `knowledge`, `idx`) an attack expects, so an attack plugin can
run on it unchanged. The runner's oracle and counter stay the engine's alone."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lite.protocol.contracts import Knowledge
from robustbench_lite.protocol.threat_models import ThreatModel


class OwnModel:
    """`model` behind the attack interface, with gradients (the plugin owns it)."""

    knowledge = Knowledge.GRADIENT
    stochastic = False

    def __init__(
        self, model: nn.Module, num_classes: int, threat_model: ThreatModel | None = None
    ) -> None:
        self._model = model
        self.num_classes = num_classes
        self.threat_model = threat_model

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of `x` (`idx` is accepted as an attack passes it, and unused)."""
        return self._model(x)


def own_model(
    model: nn.Module, num_classes: int, threat_model: ThreatModel | None = None
) -> OwnModel:
    """A model the plugin owns, ready to be attacked by an attack plugin (white-box)."""
    return OwnModel(model, num_classes, threat_model)
