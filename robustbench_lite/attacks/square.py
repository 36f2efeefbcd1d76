"""Attacks `square` and `square-l2`: Andriushchenko et al. 2020, "Square Attack: a
query-efficient black-box adversarial attack via random search"."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from robustbench_lite.api import (
    NORM_BALLS,
    TM,
    Adversarial,
    Attack,
    Knowledge,
    QueryModel,
    between,
    hp,
    margin_loss,
    one_of,
    plugin,
    preset,
    require_budget,
)

#: The paper's schedule: p halves at these numbers of queries out of 10,000 (rescaled to the
#: budget), from p_init down to p_init / 512.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, used: int, budget: int) -> float:
    """The fraction of pixels a square covers after `used` of `budget` queries."""
    at = int(used / budget * 10_000)
    return p_init / 2 ** sum(at > mark for mark in _HALVINGS)


def _rings(rows: int, cols: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Concentric rectangles around the centre, weighted 1/(k+1)^2 (the paper's L2 'pseudo-
    Gaussian' blob), of unit L2 norm."""
    r = torch.arange(rows, device=device).view(-1, 1)
    c = torch.arange(cols, device=device).view(1, -1)
    # ring k covers rows [rows//2 - k, rows//2 + k] and cols [cols//2 - k, cols//2 + k]
    ring = torch.maximum((r - rows // 2).abs(), (c - cols // 2).abs())
    k = torch.arange(max(rows // 2 + 1, cols // 2 + 1), device=device).view(-1, 1, 1)
    blob = ((ring[None] <= k).double() / (k + 1.0) ** 2).sum(dim=0)
    return blob / blob.norm()


@lru_cache(maxsize=32)
def _pm_window(s: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The L2 update window: a blob on one half and its negative on the other, unit norm.
    Cached per (size, device): every L2 step asks for it again, and nothing writes to it."""
    w = torch.cat([_rings(s // 2, s, device), -_rings(s - s // 2, s, device)], dim=0)
    return (w / w.norm()).float()


@plugin
class Square(Attack):
    """Random search over square-shaped updates, accepted when the margin loss decreases.

    Only scores are used, under torch.no_grad. linf starts from vertical stripes of +-eps and
    sets a random square of side sqrt(p * pixels) to +-eps per channel; l2 starts from a grid of
    +-blobs of norm eps and moves mass from a second window into a +-window (the paper's Alg. 3),
    staying on the eps-sphere. p follows the paper's schedule over the budget used. A sample
    costs one query for its start and one per iteration, stops once fooled (unless the model is
    stochastic, where every sample spends its whole budget) and never exceeds `budget`.
    """

    name = "square"
    knowledge = Knowledge.SCORES
    threat_model = TM.LINF

    norm: str = hp(TM.LINF, one_of(NORM_BALLS))
    p_init: float = hp(0.8, between(0, 1, open_low=True))

    def validate(self) -> None:
        self.threat_model = TM(self.norm)
        # The paper's two algorithms (Alg. 2 for linf, Alg. 3 for l2), by threat model.
        self._start, self._step = {
            TM.LINF: (self._init_linf, self._step_linf),
            TM.L2: (self._init_l2, self._step_l2),
        }[self.threat_model]

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
        stochastic = bool(getattr(model, "stochastic", False))
        x_best = self._start(x, eps, generator)
        margin = margin_loss(model(x_best, idx=torch.arange(len(x), device=x.device)), y).neg()
        for used in range(1, budget):
            live = (
                torch.arange(len(x), device=x.device)
                if stochastic
                else torch.nonzero(margin >= 0).squeeze(1)
            )
            if len(live) == 0:
                break
            p = p_schedule(self.p_init, used - 1, budget)
            x_new = self._step(x[live], x_best[live], eps, p, generator)
            new_margin = margin_loss(model(x_new, idx=live), y[live]).neg()
            better = new_margin < margin[live]
            x_best[live[better]] = x_new[better]
            margin[live[better]] = new_margin[better]
        return Adversarial(x_best)

    # -- linf ----------------------------------------------------------------------------------

    def _init_linf(self, x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
        """Vertical stripes: each column of each channel moves by +eps or -eps."""
        n, c, _, w = x.shape
        signs = _signs((n, c, 1, w), generator)
        return (x + eps * signs).clamp(0.0, 1.0)

    def _step_linf(
        self, x: torch.Tensor, x_best: torch.Tensor, eps: float, p: float, g: torch.Generator
    ) -> torch.Tensor:
        """x_best with one random square set to +-eps per channel; a square that would leave
        x_best unchanged is redrawn (as in the paper's code)."""
        n, c, h, w = x.shape
        s = min(max(round(math.sqrt(p * h * w)), 1), min(h, w) - 1)
        mask = _square_mask(n, h, w, s, g)
        signs = _signs((n, c, 1, 1), g)
        for _ in range(16):
            x_new = torch.where(mask, (x + eps * signs).clamp(0.0, 1.0), x_best)
            same = ((x_new - x_best).abs() <= 1e-7).flatten(1).all(dim=1)
            if not bool(same.any()):
                break
            signs[same] = _signs((int(same.sum()), c, 1, 1), g)
        return x_new

    # -- l2 ------------------------------------------------------------------------------------

    def _init_l2(self, x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
        """A grid of +-windows of side h//5 with random signs, scaled to L2 norm eps."""
        n, c, h, w = x.shape
        s = max(min(h, w) // 5, 2)
        delta = torch.zeros_like(x)
        top, left = (h - s * (h // s)) // 2, (w - s * (w // s)) // 2
        for i in range(h // s):
            for j in range(w // s):
                patch = _oriented(_pm_window(s, x.device), n, generator) * _signs(
                    (n, c, 1, 1), generator
                )
                r, q = top + i * s, left + j * s
                delta[:, :, r : r + s, q : q + s] += patch
        return _inside(x, (x + eps * delta / _norm(delta)).clamp(0.0, 1.0), eps)

    def _step_l2(
        self, x: torch.Tensor, x_best: torch.Tensor, eps: float, p: float, g: torch.Generator
    ) -> torch.Tensor:
        """Algorithm 3: window 1 gets its old content plus a +-window, rescaled to take the
        mass of windows 1 and 2 and the unused budget; window 2 is zeroed; then back onto the
        eps-sphere."""
        n, c, h, w = x.shape
        s = max(round(math.sqrt(p * h * w)), 3)
        side = min(h, w)
        s = min(s + 1 - s % 2, side - 1 - side % 2)  # odd, and smaller than the image
        delta = x_best - x
        first, second = _square_mask(n, h, w, s, g), _square_mask(n, h, w, s, g)
        norm_first = _norm(delta * first, dims=(2, 3))
        norm_union = _norm(delta * (first | second), dims=(2, 3))
        spare = (eps**2 - _norm(delta) ** 2).clamp_min(0.0) / c
        update = _oriented(_pm_window(s, x.device), n, g) * _signs((n, c, 1, 1), g)
        update = update + _window(delta, first, s) / (norm_first + 1e-10)
        update = update / _norm(update, dims=(2, 3)) * (spare + norm_union**2).sqrt()
        delta = delta.masked_fill(second, 0.0)
        delta = delta.masked_scatter(first.expand_as(delta), update)
        return _inside(x, (x + eps * delta / _norm(delta)).clamp(0.0, 1.0), eps)


def _inside(x: torch.Tensor, x_new: torch.Tensor, eps: float) -> torch.Tensor:
    """x_new, pulled towards x by a relative 1e-6 where float32 rounding left it outside the
    eps-sphere it was scaled onto (by up to 1.2e-7 at eps 1.5). Such a point is one the runner's
    projection would move after the attack scored it, and a point found at the boundary could
    lose its misclassification there; 1e-6 is ten times the rounding, so one pull suffices."""
    ball = NORM_BALLS[TM.L2]
    over = ball.distance(x, x_new) > eps
    if bool(over.any()):
        x_new = x_new.clone()
        x_new[over] = (x[over] + (x_new[over] - x[over]) * (1 - 1e-6)).clamp(0.0, 1.0)
    return x_new


def _signs(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=generator.device).float() * 2 - 1


def _norm(t: torch.Tensor, dims: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    return t.pow(2).sum(dim=dims, keepdim=True).sqrt().clamp_min(1e-12)


def _square_mask(n: int, h: int, w: int, s: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 1, h, w) bool: one s x s square per sample at a uniformly random position."""
    top = torch.randint(0, h - s + 1, (n, 1, 1, 1), generator=generator, device=generator.device)
    left = torch.randint(0, w - s + 1, (n, 1, 1, 1), generator=generator, device=generator.device)
    r = torch.arange(h, device=generator.device).view(1, 1, -1, 1)
    q = torch.arange(w, device=generator.device).view(1, 1, 1, -1)
    return (r >= top) & (r < top + s) & (q >= left) & (q < left + s)


def _window(t: torch.Tensor, mask: torch.Tensor, s: int) -> torch.Tensor:
    """The (n, c, s, s) contents of t under each sample's s x s square `mask`."""
    n, c = t.shape[:2]
    return t.masked_select(mask.expand_as(t)).view(n, c, s, s)


def _oriented(window: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 1, s, s): the window, transposed for a random half of the samples."""
    flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), window.T, window)


SquareL2 = preset(
    Square, "square-l2", "Square Attack in the L2 ball (Andriushchenko et al. 2020).", norm=TM.L2
)
