"""Expectation over transformation (Athalye et al. 2018, "Obfuscated gradients give a false sense
of security"): what an attack sees of a randomized defense, so randomness cannot hide weakness.

The runner, not any attack, wraps a randomized model in `EOT`; every attack then optimizes the
expected classifier, and the runner's QueryCounter charges the m draws of each row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EOT(nn.Module):
    """The mean of a stochastic model's softmax over `draws` forward passes, as log-probabilities.

    Gradients flow through every draw, so a gradient attack follows the averaged gradient; a score
    attack reads averaged scores; argmax is the soft vote over the draws. Averaging probabilities
    rather than logits keeps one draw with large logits from dominating the expectation.
    """

    def __init__(self, model: nn.Module, draws: int) -> None:
        super().__init__()
        if draws < 1:
            raise ValueError(f"EOT needs at least one draw, got {draws}")
        self.model = model
        self.draws = draws

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([F.log_softmax(self.model(x), dim=1) for _ in range(self.draws)])
        return torch.logsumexp(logp, dim=0) - math.log(self.draws)
