"""Attacks `apgd`, `apgd-t`, `apgd-l2`, `apgd-t-l2`: Auto-PGD, Croce & Hein 2020, "Reliable
evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import torch

from robustbench_lite.api import (
    LOSSES,
    NORM_BALLS,
    TM,
    Adversarial,
    Attack,
    Knowledge,
    QueryModel,
    at_least,
    between,
    hp,
    one_of,
    plugin,
    preset,
)

#: The losses APGD ascends (the registry's, api.LOSSES; `dlr-targeted` runs once per target).
APGD_LOSSES = ("ce", "dlr", "dlr-targeted")


def checkpoints(steps: int) -> list[int]:
    """Iteration counts w_j at which APGD checks its step size: w_1 = 0.22 N and
    w_{j+1} - w_j = max(w_j - w_{j-1} - 0.03 N, 0.06 N) (the paper's p_j schedule, as integers)."""
    length = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    marks, at = [], length
    while at <= steps:
        marks.append(at)
        length = max(length - shrink, shortest)
        at += length
    return marks


class _Run(NamedTuple):
    """One APGD run over a subset of the batch (tensors indexed like that subset)."""

    x_best: torch.Tensor  # the highest-loss iterate
    loss_best: torch.Tensor
    fooled: torch.Tensor  # bool: some iterate was misclassified
    x_fooled: torch.Tensor  # the first misclassified iterate (x_best where none)


@plugin
class APGD(Attack):
    """PGD whose step size adapts per sample, with momentum, so no step size needs tuning.

    From a random start, steps of size eta (initially 2 eps) move along sign(grad) (linf) or
    grad/||grad|| (l2), mixed with the last move by momentum 0.75. At each checkpoint eta halves
    for a sample whose loss rose in fewer than rho of the steps since the last checkpoint, or
    whose eta and best loss both stayed put; that sample restarts from its best point. Following
    AutoAttack, a sample is dropped once fooled and restarts/targets attack only the robust ones.
    Against a stochastic model one fooled answer proves nothing: every sample takes every step,
    restart and target, and keeps its highest-loss iterate. `dlr-targeted` runs once per target,
    the n_target_classes classes with the highest clean logits besides the true one.
    """

    name = "apgd"
    knowledge = Knowledge.GRADIENT
    profiles: ClassVar = {
        "quick": {"steps": 20},
        "standard": {"steps": 100},  # AutoAttack's standard version
        "paper": {"steps": 100, "restarts": 5},  # AutoAttack's "plus" version
    }

    norm: str = hp(TM.LINF, one_of(NORM_BALLS))
    loss: str = hp("ce", one_of(APGD_LOSSES))
    steps: int = hp(100, at_least(1))
    restarts: int = hp(1, at_least(1))
    n_target_classes: int = hp(9, at_least(1))
    rho: float = hp(0.75, between(0, 1, open_low=True))
    momentum: float = hp(0.75, between(0, 1, open_low=True))

    def validate(self) -> None:
        self.threat_model = TM(self.norm)

    def unsupported(self, shape: tuple[int, int, int], num_classes: int) -> str | None:
        need = LOSSES[self.loss].min_classes
        if num_classes < need:
            return (
                f"the {self.loss} loss needs at least {need} classes, the data have {num_classes}"
            )
        return None

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
        stochastic = bool(getattr(model, "stochastic", False))
        n = len(x)
        x_adv = x.clone()
        best = torch.full((n,), float("-inf"), device=x.device)
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        targets: list[torch.Tensor | None] = [None]
        loss = LOSSES[self.loss]
        if loss.needs_target:
            with torch.no_grad():
                clean = model(x, idx=torch.arange(n, device=x.device)).detach()
            if clean.shape[1] < loss.min_classes:
                raise ValueError(f"the {loss.name} loss needs at least {loss.min_classes} classes")
            if not stochastic:
                fooled = clean.argmax(dim=1) != y  # already wrong: nothing to attack
            k = min(self.n_target_classes, clean.shape[1] - 1)
            order = clean.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
            targets = [order[:, j] for j in range(k)]
        for target in targets:
            for _ in range(self.restarts):
                idx = (
                    torch.arange(n, device=x.device)
                    if stochastic
                    else torch.nonzero(~fooled).squeeze(1)
                )
                if len(idx) == 0:
                    return Adversarial(x_adv)
                t = None if target is None else target[idx]
                out = self._single(model, x[idx], y[idx], t, idx, eps, generator, stochastic)
                won = out.fooled & (not stochastic)
                x_adv[idx[won]] = out.x_fooled[won]
                fooled[idx[won]] = True
                better = ~won & (out.loss_best > best[idx])
                x_adv[idx[better]] = out.x_best[better]
                best[idx[better]] = out.loss_best[better]
        return Adversarial(x_adv)

    def _evaluate(
        self,
        model: QueryModel,
        xk: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        idx: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, its gradient and whether the model is fooled, at each row of xk (one query)."""
        with torch.enable_grad():
            xk = xk.detach().requires_grad_(True)
            logits = model(xk, idx=idx)
            per_sample = LOSSES[self.loss](logits, y, target)
            (grad,) = torch.autograd.grad(per_sample.sum(), xk)
        return per_sample.detach(), grad.detach(), logits.detach().argmax(dim=1) != y

    def _single(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        idx: torch.Tensor,
        eps: float,
        generator: torch.Generator,
        stochastic: bool,
    ) -> _Run:
        """One APGD run of `steps` steps (Algorithm 1 of the paper) on the rows of x."""
        ball = NORM_BALLS[self.norm]
        m = len(x)
        xk = ball.project(x, x + ball.random_start(x, eps, generator, surface=True), eps)
        loss, grad, hit = self._evaluate(model, xk, y, target, idx)
        x_prev, x_best, grad_best = xk.clone(), xk.clone(), grad.clone()
        loss_best, last_loss = loss.clone(), loss.clone()
        fooled, x_fooled = hit.clone(), xk.clone()
        live = torch.ones(m, dtype=torch.bool, device=x.device) if stochastic else ~hit
        eta = torch.full((m,), 2.0 * eps, device=x.device)
        rises = torch.zeros(m, dtype=torch.int64, device=x.device)
        best_at_check, halved_at_check = (
            loss_best.clone(),
            torch.zeros(m, dtype=torch.bool, device=x.device),
        )
        marks, last_mark = set(checkpoints(self.steps)), 0
        for i in range(self.steps):
            a = torch.nonzero(live).squeeze(1)
            if len(a) == 0:
                break
            # Step 1 uses no momentum (x_prev = x_0); then x_{k+1} = P(x_k + mu (z - x_k)
            # + (1 - mu)(x_k - x_{k-1})) with z = P(x_k + eta * direction).
            mu = 1.0 if i == 0 else self.momentum
            cur, x0 = xk[a], x[a]
            step = eta[a].view(-1, 1, 1, 1) * ball.steepest_direction(grad[a])
            z = ball.project(x0, cur + step, eps)
            new = ball.project(x0, cur + mu * (z - cur) + (1 - mu) * (cur - x_prev[a]), eps)
            x_prev[a], xk[a] = cur, new
            loss_a, grad[a], hit_a = self._evaluate(model, new, y[a], _sub(target, a), idx[a])
            rises[a] += (loss_a > last_loss[a]).long()
            last_loss[a] = loss_a
            up = a[loss_a > loss_best[a]]
            x_best[up], grad_best[up] = xk[up], grad[up]
            loss_best[a] = torch.maximum(loss_best[a], loss_a)
            first = a[hit_a & ~fooled[a]]
            x_fooled[first], fooled[first] = xk[first], True
            if not stochastic:
                live[a[hit_a]] = False
            if i + 1 in marks:  # checkpoint: halve eta where progress stalled, restart from best
                stalled = rises < self.rho * (i + 1 - last_mark)
                stalled |= ~halved_at_check & (loss_best <= best_at_check)
                stalled &= live
                eta[stalled] /= 2
                xk[stalled] = x_best[stalled]
                x_prev[stalled] = x_best[stalled]  # no momentum across a restart
                grad[stalled] = grad_best[stalled]
                last_loss[stalled] = loss_best[stalled]
                halved_at_check, best_at_check = stalled, loss_best.clone()
                rises.zero_()
                last_mark = i + 1
        x_fooled[~fooled] = x_best[~fooled]
        return _Run(x_best, loss_best, fooled, x_fooled)


def _sub(target: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if target is None else target[rows]


_TARGETED_PROFILES: dict[str, Mapping[str, Any]] = {
    "quick": {"steps": 20, "n_target_classes": 3},
    "standard": {"steps": 100, "n_target_classes": 9},  # AutoAttack's standard APGD-T
    "paper": {"steps": 100, "n_target_classes": 9, "restarts": 1},  # AutoAttack's "plus"
}

APGDT = preset(
    APGD,
    "apgd-t",
    "APGD on the targeted DLR loss, one run per likely target class (Croce & Hein 2020).",
    loss="dlr-targeted",
)
APGDT.profiles = _TARGETED_PROFILES
APGDL2 = preset(
    APGD, "apgd-l2", "APGD on cross-entropy in the L2 ball (Croce & Hein 2020).", norm=TM.L2
)
APGDTL2 = preset(
    APGD,
    "apgd-t-l2",
    "APGD on the targeted DLR loss in the L2 ball (Croce & Hein 2020).",
    loss="dlr-targeted",
    norm=TM.L2,
)
APGDTL2.profiles = _TARGETED_PROFILES
