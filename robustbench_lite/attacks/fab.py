"""Attacks `fab` and `fab-l2`: the Fast Adaptive Boundary attack, Croce and Hein 2020,
"Minimally distorted adversarial examples with a fast adaptive boundary attack" (ICML), in the
targeted form AutoAttack's standard version runs (FAB-T)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from robustbench_lite.api import (
    NORM_BALLS,
    TM,
    Adversarial,
    Attack,
    Knowledge,
    QueryModel,
    at_least,
    between,
    hp,
    margin_loss,
    one_of,
    plugin,
    positive,
    preset,
)
from robustbench_lite.attacks._common.hyperplane import onto_hyperplane
from robustbench_lite.attacks._common.minimal import SETTLE_SCALES, confirmed, fools, settle


@plugin
class FAB(Attack):
    """Minimises the perturbation's norm by projecting onto the linearised decision boundary
    between the true class and a target class, biased towards the original point.

    Targets: the `n_target_classes` classes with the highest clean logits besides the true one
    (AutoAttack's FAB-T). Per target and restart, from x (a restart after the first: from a
    random point at min(best norm, eps) / 2), each of `steps` steps queries x_k for the logit
    difference f = z_t - z_y and its gradient g, and linearises the boundary f = 0 at x_k. The
    smallest steps onto that hyperplane inside the box [0, 1], d_k from x_k and d_0 from x
    (`onto_hyperplane`, the paper's box-constrained projection; gradient components below
    `grad_floor` of the largest count as zero, as in AutoAttack's code, so the box corner where
    the hyperplane is out of reach does not move rounding noise by its whole room), are mixed:
    x_k+1 = (1 - a)(x_k + eta d_k) + a (x + eta d_0), with a = min(|d_k| / (|d_k| + |d_0|), alpha_max)
    the paper's bias towards the original point (a close boundary pulls towards x) and eta > 1
    an overshoot that crosses it. A second query checks x_k+1: if it fools (any class but y,
    with a margin above `rel_margin` of the largest |logit|, as FMN counts it) it is kept when
    smaller than the sample's best; if it is misclassified at all, x_k+1 moves back to
    x + beta (x_k+1 - x) to look for a closer one. After the last target the final search bisects
    `search_steps` times on the segment from x to the best point, keeping the closest point
    that still fools.

    Every sample runs every target (AutoAttack stops at the first point within eps; a minimal
    attack wants the smallest), and it returns each sample's smallest fooling point, possibly
    beyond the cell's eps (the runner records its distance; at eps it counts as any other
    cell), and x where none fooled. Against a stochastic model a fooling point replaces the best
    only after `confirm` fresh draws agree, and the best is pushed outward until they do (as in
    FMN); a deterministic model is never asked twice.

    Queries per sample: 1 (clean logits) + targets x restarts x steps x 2 (one with gradient)
    + search_steps (+ `confirm` per check and 6 x `confirm` to settle, stochastic models).
    Profiles: quick 3 targets x 20 steps, standard and paper AutoAttack's FAB-T (9 targets x 100
    steps, alpha_max 0.1, eta 1.05, beta 0.9, 1 restart). On 250 digits of the quick `none`
    model, one thread: quick 131 queries, 8.5 s (fab-l2 9.2 s), median Linf 0.0859 and L2 1.2971
    (fmn's quick 100 steps: 0.0866 and 1.3429, 9.8 and 7.2 s); standard 1,811 queries, median
    Linf 0.0852 in 172 s (on 2 cores shared by three busy workers). Against torchattacks' FAB on
    the standard models: `benchmarks/bench_independent.py`, docs/benchmarks.md.
    In `--attack all` since the committed quick grid has its cells (the standard grid gains
    them with its one regeneration).
    """

    name = "fab"
    knowledge = Knowledge.GRADIENT
    minimal = True
    profiles: ClassVar = {
        "quick": {"steps": 20, "n_target_classes": 3},
        "standard": {"steps": 100, "n_target_classes": 9},
        "paper": {"steps": 100, "n_target_classes": 9},
    }

    norm: str = hp(TM.LINF, one_of(NORM_BALLS))
    steps: int = hp(100, at_least(1))
    n_target_classes: int = hp(9, at_least(1))
    restarts: int = hp(1, at_least(1))
    alpha_max: float = hp(0.1, between(0, 1))
    eta: float = hp(1.05, positive(), doc="overshoot past the linearised boundary")
    beta: float = hp(0.9, between(0, 1, open_low=True, open_high=True))
    search_steps: int = hp(10, at_least(0), doc="final bisection towards x")
    rel_margin: float = hp(1e-5, between(0, 1), doc="margin that counts as fooling, per |logit|")
    grad_floor: float = hp(
        1e-8, between(0, 1), doc="gradient components below this share of the largest: zero"
    )
    confirm: int = hp(5, at_least(1), doc="fresh draws that must agree (stochastic models)")

    def validate(self) -> None:
        self.threat_model = TM(self.norm)

    def unsupported(self, shape: tuple[int, int, int], num_classes: int) -> str | None:
        return "FAB needs at least 2 classes" if num_classes < 2 else None

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
        n, idx = len(x), torch.arange(len(x), device=x.device)
        self._stochastic = bool(getattr(model, "stochastic", False))
        with torch.no_grad():
            clean = model(x, idx=idx).detach()
        k = min(self.n_target_classes, clean.shape[1] - 1)
        steps = self._steps_within(budget, k)
        best, found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        if not self._stochastic:  # already wrong: distance 0, nothing to attack
            found = fools(clean, y, self.rel_margin)
        best_norm = torch.where(found, 0.0, math.inf).to(x.dtype)
        order = clean.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
        for j in range(k):
            for r in range(self.restarts):
                start = x if r == 0 else self._random_start(x, best_norm, eps, generator)
                self._descend(model, x, y, order[:, j], start, steps, best, best_norm, found)
        self._search(model, x, y, best, best_norm, found)
        if self._stochastic:
            best = settle(model, x, y, best, found, draws=self.confirm, rel_margin=self.rel_margin)
        return Adversarial(best)

    def _steps_within(self, budget: int | None, targets: int) -> int:
        """The steps per target and restart that `budget` queries per sample allow."""
        if budget is None:
            return self.steps
        per_check = 1 + self.confirm if self._stochastic else 1
        settling = len(SETTLE_SCALES) * self.confirm if self._stochastic else 0
        fixed = 1 + self.search_steps * per_check + settling
        steps = min(self.steps, (budget - fixed) // (targets * self.restarts * (1 + per_check)))
        if steps < 1:
            need = fixed + targets * self.restarts * (1 + per_check)
            raise ValueError(f"{self.name} needs {need} queries per sample, budget {budget}")
        return steps

    def _random_start(
        self, x: torch.Tensor, best_norm: torch.Tensor, eps: float, generator: torch.Generator
    ) -> torch.Tensor:
        """A random point at min(best norm, eps) / 2 from x (the reference's restart)."""
        radius = torch.clamp(best_norm, max=eps) / 2
        unit = NORM_BALLS[self.norm].random_start(x, 1.0, generator, surface=True)
        return (x + unit * radius.view(-1, *([1] * (x.dim() - 1)))).clamp(0.0, 1.0)

    def _fooled(
        self, model: QueryModel, x_k: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row of x_k (one query): is it misclassified at all, and does it fool with the
        `rel_margin` a point needs to be kept (on a stochastic model, `confirm` more agree)?"""
        with torch.no_grad():
            logits = model(x_k, idx=idx)
        wrong = margin_loss(logits, y) > 0
        fooled = fools(logits, y, self.rel_margin)
        if self._stochastic and bool(fooled.any()):
            rows = torch.nonzero(fooled).squeeze(1)
            fooled[rows] = confirmed(
                model, x_k[rows], y[rows], idx[rows], draws=self.confirm, rel_margin=self.rel_margin
            )
        return wrong, fooled

    def _descend(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor,
        start: torch.Tensor,
        steps: int,
        best: torch.Tensor,
        best_norm: torch.Tensor,
        found: torch.Tensor,
    ) -> None:
        """One run of `steps` FAB steps towards `target` from `start`; updates the best
        points, their norms and `found` in place."""
        n, idx = len(x), torch.arange(len(x), device=x.device)
        ball = NORM_BALLS[self.norm]
        x0 = x.flatten(1).double()
        x_k = start.clone()
        for _ in range(steps):
            with torch.enable_grad():
                x_k.requires_grad_(True)
                logits = model(x_k, idx=idx)
                diff = logits.gather(1, target[:, None]) - logits.gather(1, y[:, None])
                (grad,) = torch.autograd.grad(diff.sum(), x_k)
            # The boundary between y and the target, linearised at x_k: f + <g, z - x_k> = 0.
            f, g = diff.detach().squeeze(1).double(), grad.flatten(1).double()
            # Components far below the float32 gradient's resolution are noise: left in, the box
            # corner (where the hyperplane is out of reach) moves each of them by its whole room
            # for no progress (AutoAttack's projection drops |w| < 1e-8 likewise).
            floor = self.grad_floor * g.abs().amax(dim=1, keepdim=True)
            g = torch.where(g.abs() <= floor, torch.zeros_like(g), g)
            xf = x_k.detach().flatten(1).double()
            c = torch.cat([-f, -f - (g * (x0 - xf)).sum(dim=1)])
            d = onto_hyperplane(self.threat_model, torch.cat([xf, x0]), torch.cat([g, g]), c)
            size = d.abs().amax(dim=1) if self.threat_model == TM.LINF else d.norm(dim=1)
            a_k, a_0 = size[:n].clamp_min(1e-8), size[n:].clamp_min(1e-8)
            alpha = (a_k / (a_k + a_0)).clamp(0.0, self.alpha_max)[:, None]
            mixed = (1 - alpha) * (xf + self.eta * d[:n]) + alpha * (x0 + self.eta * d[n:])
            x_k = mixed.clamp(0.0, 1.0).to(x.dtype).view_as(x)
            wrong, fooled = self._fooled(model, x_k, y, idx)
            norm = ball.distance(x, x_k)
            better = fooled & (norm < best_norm)
            best[better], best_norm[better] = x_k[better], norm[better]
            found |= better
            # Back towards x, to find a closer fooling point from there: after any
            # misclassified point, as the paper does, even one too close to the boundary to be
            # kept (waiting for a kept one trapped FAB-L2 at the boundary: on the standard
            # pgd-at model it then ended at 1.52 where the paper's rule finds 1.01).
            x_k[wrong] = x[wrong] + self.beta * (x_k[wrong] - x[wrong])

    def _search(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        best: torch.Tensor,
        best_norm: torch.Tensor,
        found: torch.Tensor,
    ) -> None:
        """The final search: bisection on the segment from x to each best point, keeping the
        closest point found to fool (the tested point itself, not a recomputed one)."""
        rows = torch.nonzero(found & (best_norm > 0)).squeeze(1)
        if len(rows) == 0 or self.search_steps == 0:
            return
        x0, far = x[rows], best[rows]
        kept = far.clone()
        lo = torch.zeros(len(rows), dtype=torch.float64, device=x.device)
        hi = torch.ones_like(lo)
        shape = (-1, *([1] * (x.dim() - 1)))
        for _ in range(self.search_steps):
            mid = (lo + hi) / 2
            trial = (x0.double() + mid.view(shape) * (far - x0).double()).to(x.dtype)
            _, ok = self._fooled(model, trial, y[rows], rows)
            kept[ok] = trial[ok]
            hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
        best[rows] = kept
        best_norm[rows] = NORM_BALLS[self.norm].distance(x0, kept)


FABL2 = preset(
    FAB,
    "fab-l2",
    "The Fast Adaptive Boundary attack minimising the L2 norm (Croce and Hein 2020).",
    norm=TM.L2,
)
