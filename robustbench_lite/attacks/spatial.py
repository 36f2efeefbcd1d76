"""Attack `spatial`: the worst rotation + translation by grid search or worst-of-k random draws,
Engstrom et al. 2019, "Exploring the landscape of spatial robustness" (labels only)."""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import torch

from robustbench_lite.api import (
    SPATIAL,
    TM,
    Adversarial,
    Attack,
    Knowledge,
    QueryModel,
    at_least,
    hp,
    one_of,
    plugin,
    preset,
    rotate_translate,
)

log = logging.getLogger(__name__)

MODES = ("grid", "random")
#: Several transforms share one model call while fewer than this many samples are left, so
#: per-call overhead stays small; those rows are queried (and charged) even past a success.
MIN_ROWS = 128


@plugin
class Spatial(Attack):
    """Try transforms in turn; each sample keeps the first (angle, dx, dy) that fools the model.

    `grid`: every combination of `rotations` angles and `translations` x `translations` shifts
    spread evenly over the allowed range (the paper's MNIST grid: 31 x 5 x 5 = 775), in
    foolbox's order (angle outermost). `random`: `tries` transforms drawn uniformly from the
    range for each sample (the paper's worst-of-10). Samples leave the search once fooled.
    Against a randomized defense "fooled" is the runner's EOT view (mean of m draws); the
    runner's majority vote may still flip a borderline transform back, which then counts robust.
    """

    name = "spatial"
    threat_model = TM.SPATIAL
    knowledge = Knowledge.LABELS
    profiles: ClassVar = {"quick": {"rotations": 11, "translations": 3}}

    mode: str = hp("grid", one_of(MODES))
    rotations: int = hp(31, at_least(1))
    translations: int = hp(5, at_least(1))
    tries: int = hp(10, at_least(1))

    def grid(
        self, eps: float, device: torch.device | str = "cpu", tm: Any = SPATIAL
    ) -> torch.Tensor:
        """The grid's (angle, dx, dy) rows at eps, angle outermost and dy innermost."""
        lim = tm.limits(eps)
        angles = torch.linspace(
            -lim["angle"], lim["angle"], self.rotations, dtype=torch.float64, device=device
        )
        dx, dy = (
            torch.linspace(-lim[k], lim[k], self.translations, dtype=torch.float64, device=device)
            for k in ("dx", "dy")
        )
        if self.rotations == 1:
            angles = torch.zeros(1, dtype=torch.float64, device=device)
        if self.translations == 1:
            dx = dy = torch.zeros(1, dtype=torch.float64, device=device)
        return torch.cartesian_prod(angles, dx, dy)

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
        n = len(x)
        tm = getattr(model, "threat_model", None) or SPATIAL  # the data's range
        if self.mode == "grid":
            grid = self.grid(eps, x.device, tm)
            if budget is not None and len(grid) > budget:
                log.warning("spatial: budget %d cuts the grid of %d transforms", budget, len(grid))
                grid = grid[:budget]
            candidates = grid.expand(n, -1, -1)  # (n, T, 3)
        else:
            lim = tm.limits(eps)
            scale = torch.tensor(
                [lim["angle"], lim["dx"], lim["dy"]], dtype=torch.float64, device=x.device
            )
            tries = self.tries if budget is None else min(self.tries, budget)
            unit = torch.rand(
                n, tries, 3, generator=generator, dtype=torch.float64, device=x.device
            )
            candidates = (unit * 2 - 1) * scale
        best = self._search(model, x, y, candidates)
        x_adv = rotate_translate(x, best[:, 0], best[:, 1], best[:, 2]).clamp(0.0, 1.0)
        return Adversarial(x_adv, {"angle": best[:, 0], "dx": best[:, 1], "dy": best[:, 2]})

    @staticmethod
    def _search(
        model: QueryModel, x: torch.Tensor, y: torch.Tensor, candidates: torch.Tensor
    ) -> torch.Tensor:
        """Per sample, the first candidate (in order) that fools the model; zeros if none."""
        n, total = candidates.shape[:2]
        best = torch.zeros(n, 3, dtype=torch.float64, device=x.device)
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        t = 0
        with torch.no_grad():
            while t < total:
                active = torch.nonzero(~fooled).squeeze(1)
                if len(active) == 0:
                    break
                k = min(total - t, math.ceil(MIN_ROWS / len(active)))
                params = candidates[active, t : t + k].transpose(0, 1).reshape(-1, 3)  # step-major
                xs = rotate_translate(x[active].repeat(k, 1, 1, 1), *params.unbind(1))
                pred = model(xs, idx=active.repeat(k)).argmax(dim=1).view(k, len(active))
                hit = pred != y[active]
                won = hit.any(dim=0)
                first = hit.to(torch.int8).argmax(dim=0)  # the earliest fooling step
                winners = torch.nonzero(won).squeeze(1)
                best[active[winners]] = candidates[active[winners], t + first[winners]]
                fooled[active[winners]] = True
                t += k
        return best


SpatialRandom = preset(
    Spatial,
    "spatial-random",
    "Worst of 10 random rotations + translations per sample (Engstrom et al. 2019).",
    mode="random",
)
