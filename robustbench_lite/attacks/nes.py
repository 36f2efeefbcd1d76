"""Attack `nes`: score-based Linf attack with NES gradient estimates, Ilyas et al. 2018,
"Black-box adversarial attacks with limited queries and information"."""

from __future__ import annotations

import torch

from robustbench_lite.api import (
    LOSSES,
    NORM_BALLS,
    TM,
    Adversarial,
    Attack,
    Knowledge,
    QueryModel,
    require_budget,
)
from robustbench_lite.attacks._common.frequency import Sampler, gaussian

#: The losses NES ascends from the scores (the registry's, api.LOSSES).
NES_LOSSES = ("margin", "ce")


class NES(Attack):
    """Projected sign steps along an antithetic-Gaussian estimate of the loss gradient.

    Only output scores are used (no autograd through the model). Each round a sample is queried
    once at its iterate (stop if misclassified; the loss feeds the plateau schedule of the paper's
    code), then `samples` times around it for the estimate, as long as its budget allows both.
    The noise comes from `sampler` (pixel Gaussian; low-frequency DCT noise for `lf-nes`).
    """

    name = "nes"
    knowledge = Knowledge.SCORES
    threat_model = TM.LINF

    def __init__(
        self,
        sampler: Sampler = gaussian,
        /,
        *,
        sigma: float = 1e-3,
        samples: int = 20,
        max_lr: float = 0.05,
        min_lr: float = 5e-5,
        momentum: float = 0.9,
        plateau: int = 5,
        loss: str = "margin",
    ) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if samples < 2 or samples % 2:
            raise ValueError(
                f"samples must be an even number >= 2 (antithetic pairs), got {samples}"
            )
        if not 0 < min_lr <= max_lr:
            raise ValueError(f"need 0 < min_lr <= max_lr, got {min_lr} and {max_lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if plateau < 2:
            raise ValueError(f"plateau must be at least 2 rounds, got {plateau}")
        if loss not in NES_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(NES_LOSSES)}, got {loss!r}")
        self.sampler = sampler
        self.sigma = sigma
        self.samples = samples
        self.max_lr = max_lr
        self.min_lr = min_lr
        self.momentum = momentum
        self.plateau = plateau
        self.loss = loss

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row loss to ascend, from the scores alone."""
        return LOSSES[self.loss](logits, y)

    @torch.no_grad()
    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> Adversarial:
        budget = require_budget(budget, self.name)
        ball = NORM_BALLS[self.threat_model]
        n = len(x)
        x_adv = x.clone()
        grad = torch.zeros_like(x)
        lr = torch.full((n,), self.max_lr, device=x.device)
        history = torch.zeros(n, self.plateau, device=x.device)  # latest losses, newest last
        filled = torch.zeros(n, dtype=torch.int64, device=x.device)
        spent = torch.zeros(n, dtype=torch.int64, device=x.device)
        active = torch.arange(n, device=x.device)
        while True:
            active = active[spent[active] + 1 <= budget]
            if len(active) == 0:
                break
            logits = model(x_adv[active], idx=active)
            spent[active] += 1
            alive = logits.argmax(dim=1) == y[active]
            active, value = active[alive], self._loss(logits[alive], y[active[alive]])
            self._schedule(active, value, history, filled, lr)
            active = active[spent[active] + self.samples <= budget]
            if len(active) == 0:
                break
            estimate = self._estimate(model, x_adv[active], y[active], active, generator)
            spent[active] += self.samples
            grad[active] = self.momentum * grad[active] + (1 - self.momentum) * estimate
            step = lr[active].view(-1, 1, 1, 1) * ball.steepest_direction(grad[active])
            x_adv[active] = ball.project(x[active], x_adv[active] + step, eps)
        return Adversarial(x_adv)

    def _estimate(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """NES: 1/(sigma n) sum_i delta_i L(x + sigma delta_i) over antithetic pairs."""
        k, half = len(x), self.samples // 2
        delta = self.sampler((k * half, *x.shape[1:]), generator).view(k, half, *x.shape[1:])
        delta = torch.cat([delta, -delta], dim=1)
        points = (x[:, None] + self.sigma * delta).clamp(0.0, 1.0).flatten(0, 1)
        rows = idx.repeat_interleave(self.samples)
        values = self._loss(model(points, idx=rows), y.repeat_interleave(self.samples))
        weights = values.view(k, self.samples, *([1] * (x.dim() - 1)))
        return (weights * delta).mean(dim=1) / self.sigma

    def _schedule(
        self,
        active: torch.Tensor,
        value: torch.Tensor,
        history: torch.Tensor,
        filled: torch.Tensor,
        lr: torch.Tensor,
    ) -> None:
        """Halve a sample's lr (down to min_lr) when its loss fell over the last `plateau` rounds."""
        history[active] = torch.cat([history[active, 1:], value[:, None]], dim=1)
        filled[active] = (filled[active] + 1).clamp(max=self.plateau)
        drop = active[(filled[active] == self.plateau) & (history[active, -1] < history[active, 0])]
        lr[drop] = (lr[drop] / 2).clamp(min=self.min_lr)
        filled[drop] = 0
