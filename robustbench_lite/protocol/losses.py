"""Losses the protocol's own checks and the attacks share."""

from __future__ import annotations

import torch


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample CW margin (Carlini & Wagner 2017): best other logit minus the true logit,
    positive once misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - true
