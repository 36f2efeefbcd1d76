"""Attack `boundary`: decision-based minimal L2 attack, Brendel, Rauber, Bethge 2018,
"Decision-based adversarial attacks: reliable attacks against black-box machine learning models"."""

from __future__ import annotations

import torch

from robustbench_lite.api import TM, Adversarial, Attack, Knowledge, QueryModel, require_budget
from robustbench_lite.attacks._common.frequency import Sampler, gaussian

#: Step-size adaptation thresholds of the reference implementation: a spherical success rate above
#: 0.5 / below 0.2 scales both steps, a success rate of the step towards the original (given an
#: adversarial spherical point) above 0.5 / below 0.2 scales the source step.
SPHERICAL_RATES = (0.2, 0.5)
SOURCE_RATES = (0.2, 0.5)
MAX_STEP = 0.5


class Boundary(Attack):
    """Walks along the decision boundary towards the original, using only the top-1 label.

    Starts from the closest of several adversarial candidates (uniform noise and the nearest
    batch samples of another class), each blended towards the original by binary search.
    Each round proposes, for every sample in one forward call, an orthogonal (spherical) step on
    the sphere around the original followed by a step towards it; every `stats_every` rounds the
    spherical point alone is queried too, and both step sizes adapt by success-rate statistics.
    The noise comes from `sampler` (pixel Gaussian; low-frequency DCT noise for `lf-boundary`).

    Defaults are tuned for budgets of 10^3-10^4 queries on 28x28 inputs: the reference's
    (spherical step 0.01, statistics every 10 steps over windows of 100 and 30) adapts only after
    1000 steps; here a spherical step of 0.05, statistics every 5 steps over windows of 5 and 10.
    """

    name = "boundary"
    knowledge = Knowledge.LABELS
    threat_model = TM.L2
    minimal = True

    def __init__(
        self,
        sampler: Sampler = gaussian,
        /,
        *,
        spherical_step: float = 0.05,
        source_step: float = 1e-2,
        step_adaptation: float = 1.5,
        stats_every: int = 5,
        spherical_window: int = 5,
        source_window: int = 10,
        init_tries: int = 5,
        init_neighbors: int = 20,
        init_coarse: int = 4,
        init_search: int = 10,
    ) -> None:
        for label, value in (("spherical_step", spherical_step), ("source_step", source_step)):
            if not 0 < value <= MAX_STEP:
                raise ValueError(f"{label} must lie in (0, {MAX_STEP}], got {value}")
        if not step_adaptation > 1:
            raise ValueError(f"step_adaptation must be above 1, got {step_adaptation}")
        for label, count in (
            ("stats_every", stats_every),
            ("spherical_window", spherical_window),
            ("source_window", source_window),
        ):
            if count < 1:
                raise ValueError(f"{label} must be at least 1, got {count}")
        for label, count in (
            ("init_tries", init_tries),
            ("init_neighbors", init_neighbors),
            ("init_coarse", init_coarse),
            ("init_search", init_search),
        ):
            if count < 0:
                raise ValueError(f"{label} must be non-negative, got {count}")
        if init_tries + init_neighbors < 1:
            raise ValueError("init_tries + init_neighbors must be at least 1")
        self.sampler = sampler
        self.spherical_step = spherical_step
        self.source_step = source_step
        self.step_adaptation = step_adaptation
        self.stats_every = stats_every
        self.spherical_window = spherical_window
        self.source_window = source_window
        self.init_tries = init_tries
        self.init_neighbors = init_neighbors
        self.init_coarse = init_coarse
        self.init_search = init_search

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
        spent = torch.zeros(len(x), dtype=torch.int64, device=x.device)
        best, found = self.start(model, x, y, spent, budget, generator)
        self.walk(model, x, y, best, found, spent, budget, generator)
        return Adversarial(best)

    # -- starting point ------------------------------------------------------------------------

    def start(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        spent: torch.Tensor,
        budget: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Adversarial starting points near x (x itself where none was found) and a found mask.

        Candidates: `init_tries` uniform-noise images and the `init_neighbors` nearest batch
        samples of another class. Every adversarial candidate's blend (1 - a) x + a c is binary
        searched for the smallest adversarial a in `init_coarse` steps; the closest one is refined
        to `init_search` steps in all. The walk is local, so where it starts matters: on MNIST
        the nearest other-class digits start far closer than noise does.
        """
        n = len(x)
        cands = self.candidates(x, y, generator)  # (n, K, ...)
        k = cands.shape[1]
        valid = torch.isfinite(cands.flatten(2)).all(dim=2)  # (n, K); inf marks a missing one
        cands = torch.where(valid.view(n, k, *([1] * (x.dim() - 1))), cands, 0.0)

        def query(pairs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
            """Is each (sample, candidate) pair's blend at alpha adversarial? One forward call."""
            i, j = pairs[:, 0], pairs[:, 1]
            spent.index_add_(0, i, torch.ones_like(i))
            return _labels(model, _blend(x[i], cands[i, j], alpha), i) != y[i]

        # Stage 1: which candidates are adversarial at all (a = 1), as far as the budget goes.
        usable = valid & (torch.arange(k, device=x.device)[None, :] < budget)
        pairs = torch.nonzero(usable)
        adv = torch.zeros(n, k, dtype=torch.bool, device=x.device)
        adv[pairs[:, 0], pairs[:, 1]] = query(pairs, torch.ones(len(pairs), device=x.device))
        low, high = torch.zeros(n, k, device=x.device), torch.ones(n, k, device=x.device)
        # Stage 2: a coarse binary search of every adversarial candidate's blend.
        for _ in range(min(self.init_coarse, self.init_search)):
            active = adv & ((spent + adv.sum(dim=1)) <= budget)[:, None]
            pairs = torch.nonzero(active)
            if len(pairs) == 0:
                break
            i, j = pairs[:, 0], pairs[:, 1]
            mid = (low[i, j] + high[i, j]) / 2
            hit = query(pairs, mid)
            high[i[hit], j[hit]], low[i[~hit], j[~hit]] = mid[hit], mid[~hit]
        # Stage 3: the closest candidate of each sample, refined.
        size = (cands - x[:, None]).flatten(2).norm(dim=2)
        reach = torch.where(adv, high * size, float("inf"))
        best = reach.argmin(dim=1)
        found = torch.isfinite(reach.gather(1, best[:, None]).squeeze(1))
        rows = torch.arange(n, device=x.device)
        low, high, chosen = low[rows, best], high[rows, best], cands[rows, best]
        for _ in range(self.init_search - min(self.init_coarse, self.init_search)):
            idx = torch.nonzero(found & (spent < budget)).squeeze(1)
            if len(idx) == 0:
                break
            mid = (low[idx] + high[idx]) / 2
            pairs = torch.stack([idx, best[idx]], dim=1)
            hit = query(pairs, mid)
            high[idx[hit]], low[idx[~hit]] = mid[hit], mid[~hit]
        return torch.where(found.view(-1, 1, 1, 1), _blend(x, chosen, high), x), found

    def candidates(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """(n, init_tries + init_neighbors, ...) starting candidates per sample: uniform noise,
        then the nearest batch samples of another class (inf where the batch has too few)."""
        n = len(x)
        noise = torch.rand((n, self.init_tries, *x.shape[1:]), generator=generator, device=x.device)
        m = min(self.init_neighbors, n)
        dist = torch.cdist(x.flatten(1), x.flatten(1))
        dist[y[:, None] == y[None, :]] = float("inf")
        near, order = dist.topk(m, dim=1, largest=False) if m else (dist[:, :0], dist[:, :0].long())
        neighbors = x[order]  # (n, m, ...)
        neighbors[~torch.isfinite(near)] = float("inf")
        missing = self.init_neighbors - m
        pad = torch.full((n, missing, *x.shape[1:]), float("inf"), device=x.device)
        return torch.cat([noise, neighbors, pad], dim=1)

    # -- the walk ------------------------------------------------------------------------------

    def walk(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        best: torch.Tensor,
        found: torch.Tensor,
        spent: torch.Tensor,
        budget: int,
        generator: torch.Generator,
    ) -> None:
        """Improve `best` in place until each found sample's budget is spent."""
        n = len(x)
        dev = x.device
        spherical = torch.full((n,), self.spherical_step, device=dev)
        source = torch.full((n,), self.source_step, device=dev)
        sph_hits, sph_seen = (
            torch.zeros(n, device=dev),
            torch.zeros(n, dtype=torch.int64, device=dev),
        )
        src_hits, src_seen = (
            torch.zeros(n, device=dev),
            torch.zeros(n, dtype=torch.int64, device=dev),
        )
        sph_rate = torch.full((n,), 0.5, device=dev)  # the latest window's spherical success rate
        dist = _dist(x, best)
        step = 0
        while True:
            step += 1
            check = step % self.stats_every == 0
            cost = 2 if check else 1
            idx = torch.nonzero(found & (spent + cost <= budget)).squeeze(1)
            if len(idx) == 0:
                break
            xi = x[idx]
            sphere, candidate = self.propose(xi, best[idx], spherical[idx], source[idx], generator)
            points = torch.cat([candidate, sphere]) if check else candidate
            rows = torch.cat([idx, idx]) if check else idx
            adv = _labels(model, points, rows) != y[rows]
            spent[idx] += cost
            cand_adv = adv[: len(idx)]
            cand_dist = _dist(xi, candidate)
            accept = cand_adv & (cand_dist < dist[idx])
            best[idx[accept]], dist[idx[accept]] = candidate[accept], cand_dist[accept]
            src_hits[idx] += cand_adv.float()
            src_seen[idx] += 1
            if check:
                sph_hits[idx] += adv[len(idx) :].float()
                sph_seen[idx] += 1
                full = sph_seen >= self.spherical_window
                sph_rate[full] = sph_hits[full] / sph_seen[full]
                factor = self._factor(sph_rate, full, SPHERICAL_RATES)
                spherical.mul_(factor).clamp_(max=MAX_STEP)
                source.mul_(factor).clamp_(max=MAX_STEP)
                sph_hits[full], sph_seen[full] = 0, 0
            # The step towards x is judged by its success given an adversarial spherical point,
            # as in the original implementation (estimated as a ratio of the two rates).
            full = src_seen >= self.source_window
            if bool(full.any()):
                rate = src_hits / src_seen.clamp_min(1) / sph_rate.clamp_min(0.05)
                source.mul_(self._factor(rate, full, SOURCE_RATES)).clamp_(max=MAX_STEP)
                src_hits[full], src_seen[full] = 0, 0

    def propose(
        self,
        x: torch.Tensor,
        adv: torch.Tensor,
        spherical: torch.Tensor,
        source: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A point on the sphere around x through adv, moved orthogonally by `spherical` times
        the radius; and that point moved towards x by `source` times the radius."""
        shape = x.shape
        diff = (adv - x).flatten(1)
        radius = diff.norm(dim=1, keepdim=True).clamp_min(1e-12)
        unit = diff / radius
        eta = self.sampler(tuple(shape), generator).flatten(1)
        eta = eta - (eta * unit).sum(dim=1, keepdim=True) * unit
        eta = eta * (spherical[:, None] * radius / eta.norm(dim=1, keepdim=True).clamp_min(1e-12))
        on_sphere = (diff + eta) / torch.sqrt(1 + spherical[:, None] ** 2)
        sphere = (x + on_sphere.view(shape)).clamp(0.0, 1.0)
        shrink = (1 - source).view(-1, 1, 1, 1)
        candidate = (x + shrink * (sphere - x)).clamp(0.0, 1.0)
        return sphere, candidate

    def _factor(
        self, rate: torch.Tensor, full: torch.Tensor, rates: tuple[float, float]
    ) -> torch.Tensor:
        """Per-sample step factor: up where a full window's success rate exceeds rates[1], down
        where it is below rates[0], else 1."""
        factor = torch.ones_like(rate)
        factor[full & (rate > rates[1])] = self.step_adaptation
        factor[full & (rate < rates[0])] = 1 / self.step_adaptation
        return factor


def _labels(model: QueryModel, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Top-1 labels: all a decision-based attack may use of the output."""
    return model(x, idx=idx).argmax(dim=1)


def _blend(x: torch.Tensor, other: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    a = alpha.view(-1, *([1] * (x.dim() - 1)))
    return (1 - a) * x + a * other


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).norm(dim=1)
