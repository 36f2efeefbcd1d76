"""The per-sample losses attacks ascend, in one registry beside the norm balls (threat_models.py):
an attack names its loss (`loss="dlr"`, the name its config records) and looks it up in `LOSSES`
instead of branching on the string. The protocol's own checks use `margin_loss` too."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import torch
from torch.nn import functional as F


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample CW margin (Carlini & Wagner 2017): best other logit minus the true logit,
    positive once misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - true


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of the true class (Madry et al. 2018's PGD loss)."""
    return F.cross_entropy(logits, y, reduction="none")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR (Croce & Hein 2020): -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3); invariant
    to the logits' scale."""
    top = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return -(true - other) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2); positive once t beats y."""
    top = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    aim = logits.gather(1, target[:, None]).squeeze(1)
    return -(true - aim) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


@dataclass(frozen=True)
class Loss:
    """A per-sample loss to maximise, called as `loss(logits, y)` or, for a targeted one,
    `loss(logits, y, target)`; `min_classes` is the fewest classes it is defined on."""

    name: str
    untargeted: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    targeted: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    min_classes: int = 2

    @property
    def needs_target(self) -> bool:
        """Whether it aims at a target class (the attack picks the targets)."""
        return self.targeted is not None

    def __call__(
        self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.targeted is not None:
            if target is None:
                raise ValueError(f"the {self.name} loss needs a target class per sample")
            return self.targeted(logits, y, target)
        assert self.untargeted is not None
        return self.untargeted(logits, y)


#: Loss name (as attack configs record it) -> the loss.
LOSSES: Final[Mapping[str, Loss]] = MappingProxyType(
    {
        "ce": Loss("ce", ce_loss),
        "margin": Loss("margin", margin_loss),
        "dlr": Loss("dlr", dlr_loss, min_classes=3),
        "dlr-targeted": Loss("dlr-targeted", targeted=targeted_dlr_loss, min_classes=4),
    }
)
