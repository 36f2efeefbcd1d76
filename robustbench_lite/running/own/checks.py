"""Checks of what a user says about their own model (`--normalize`, `preprocessing=`) and of what
it returns, made before any work (running/own/model.py calls them; the checks every model gets
are protocol/checks.py's).

- A normalization in 0-255 units (mean 125.3, std 63.0) on images in [0, 1] standardizes every
  input to nearly the same value: the model "runs", every attack looks weak and only the
  unbounded-fails flag hints at it. Refused, with the fix.
- A normalization with another channel count than the data's fails later with a shape error
  that names neither; refused here in words.
- A model that returns probabilities instead of logits is evaluated, but attacks need logits:
  the margin and cross-entropy losses flatten on saturated softmax outputs and gradient attacks
  understate what a logit attack would find (AutoAttack warns the same). A warning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.checks import Diagnostics
from robustbench_lite.protocol.devices import fork_rng

#: Rows of outputs within this of [0, 1] and of summing to 1 are taken for probabilities.
PROBABILITY_TOLERANCE = 1e-4

Normalization = tuple[Sequence[float], Sequence[float]]


def check_scale(normalize: Normalization | None) -> None:
    """Refuse means outside [0, 1] and stds outside (0, 1]: on images in [0, 1] such values are
    0-255 units (or no normalization of these images at all)."""
    if normalize is None:
        return
    mean, std = normalize
    if any(not 0.0 <= m <= 1.0 for m in mean) or any(not 0.0 < s <= 1.0 for s in std):
        raise RBError(
            f"--normalize mean {_listed(mean)}, std {_listed(std)} looks like 0-255 units; "
            "divide by 255 (images are in [0, 1], so means lie in [0, 1] and stds in (0, 1])"
        )


def check_channels(normalize: Normalization | None, channels: int) -> None:
    """Refuse a per-channel normalization whose channel count is not the data's (one value for
    every channel is fine)."""
    if normalize is None:
        return
    given = len(normalize[0])
    if given not in (1, channels):
        raise RBError(
            f"--normalize gives {given} channels, the data has {channels}; give one MEAN:STD "
            f"value per channel ({channels}), or one for all"
        )


def warn_on_probabilities(
    model: nn.Module, x: torch.Tensor, name: str, diagnostics: Diagnostics
) -> bool:
    """Warn (once, one line, kept in `diagnostics`) when the model's outputs on x look like
    probabilities: every value in [0, 1] and every row summing to 1. True if it warned."""
    with torch.no_grad(), fork_rng(x.device):
        out = model(x)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) == 0:
        return False
    out = out.detach().double()
    tol = PROBABILITY_TOLERANCE
    in_unit = bool(((out >= -tol) & (out <= 1 + tol)).all())
    if not (in_unit and bool(((out.sum(dim=1) - 1).abs() <= tol).all())):
        return False
    diagnostics.warn(
        f"model {name} returns probabilities (every row in [0, 1] sums to 1), not logits: "
        "attacks need logits (the margin and cross-entropy losses are distorted on "
        "probabilities); return the scores before the softmax"
    )
    return True


def _listed(values: Sequence[float]) -> str:
    return ":".join(f"{v:g}" for v in values)
