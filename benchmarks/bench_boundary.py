"""Query-based attacks side by side, per model on one set of samples and one query budget:
our `boundary` vs foolbox's BoundaryAttack (median L2, wall time), and the low-frequency
variants vs the plain ones (queries to success for NES, median L2 at equal queries for boundary).
Models: the zoo's standard `none`, `pgd-at` and `ibp` (the quick ones in a smoke run).

Run: `python -m benchmarks.bench_boundary` (or `make bench`). Timings share a busy machine, so
compare the ratios of one run, not absolute seconds across runs.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.common import PROFILE, size
from benchmarks.common import model as trained
from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import (
    attack_class,
    instantiate,
    load_dataset,
)

log = logging.getLogger(__name__)

N_SAMPLES = size(20, 4)
BUDGET = size(2_000, 60)  # per-sample queries of every attack below
NES_BUDGET = size(2_000, 60)
SEED = 0
REPEATS = size(2, 1)  # wall time: the fastest of this many identical runs (the machine is shared)
MODELS = ("none", "pgd-at", "ibp")


@dataclass
class Row:
    name: str
    success: float  # fraction of samples adversarial (at eps where it applies)
    median_l2: float  # of the returned points (nan for Linf)
    mean_queries: float  # over successful samples
    median_queries: float
    max_queries: int
    seconds: float
    model_seconds: float  # of `seconds`, spent in the model's forward passes

    @property
    def overhead(self) -> float:
        """Seconds the attack itself took: wall time less the model's forward passes."""
        return self.seconds - self.model_seconds


class Timed(nn.Module):
    """The model, with the time spent in its forward passes added up (for the overhead split:
    at equal queries both attacks pay the same model time)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.model(x)
        self.seconds += time.perf_counter() - start
        return out


class _Counted(nn.Module):
    """An nn.Module face for a QueryCounter, so foolbox's calls are counted like ours."""

    def __init__(self, counter: QueryCounter) -> None:
        super().__init__()
        self.counter = counter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.counter.view()(x)


def fastest(run: Callable[[], Row]) -> Row:
    """The row of the fastest of REPEATS runs (seeded, so the numbers repeat)."""
    rows = []
    for _ in range(REPEATS):
        torch.manual_seed(SEED)  # foolbox draws from torch's global generator
        rows.append(run())
    return min(rows, key=lambda row: row.seconds)


def setup(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The zoo's model of defense `name` and the first N clean-correct mnist-5k test digits."""
    model = trained(name)
    test = load_dataset("mnist-5k", "test")
    x, y = test.x[: 2 * N_SAMPLES], test.y[: 2 * N_SAMPLES]
    keep = predict(model, x) == y
    return model, x[keep][:N_SAMPLES], y[keep][:N_SAMPLES]


def ours(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: int) -> Row:
    attack: Attack = instantiate(attack_class(name), "standard")
    timed = Timed(model)
    counter = QueryCounter(timed, len(x), num_classes=10)
    eps = 0.3 if attack.threat_model == "linf" else 1.5
    start = time.perf_counter()
    output = attack.run(
        counter.view(), x, y, eps=eps, budget=budget, generator=torch.Generator().manual_seed(SEED)
    )
    seconds = time.perf_counter() - start
    x_adv = output.x
    return _row(
        name, model, x, y, x_adv, counter.counts, seconds, timed.seconds, linf=not attack.minimal
    )


def foolbox_boundary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: int,
    starts: Callable[[QueryCounter], torch.Tensor] | None = None,
) -> Row:
    """foolbox.attacks.BoundaryAttack (its defaults), with as many steps as the budget allows:
    a step queries the candidates, every 10th step the spherical candidates too."""
    import foolbox as fb

    timed = Timed(model)
    counter = QueryCounter(timed, len(x), num_classes=10)
    fmodel = fb.PyTorchModel(_Counted(counter).eval(), bounds=(0.0, 1.0))
    criterion = fb.criteria.Misclassification(y)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if starts is None:  # foolbox's own default start, counted
            init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50)
            x0 = init.run(fmodel, x, criterion)
            name = "foolbox BoundaryAttack"
        else:
            x0 = starts(counter)
            name = "foolbox BoundaryAttack, our starts"
        spent = int(counter.counts.max())
        steps = max(1, int((budget - spent - 1) / 1.1))
        attack = fb.attacks.BoundaryAttack(steps=steps)
        x_adv = attack.run(fmodel, x, criterion, starting_points=x0)
    seconds = time.perf_counter() - start
    return _row(name, model, x, y, x_adv, counter.counts, seconds, timed.seconds, linf=False)


def our_starts(
    x: torch.Tensor, y: torch.Tensor, budget: int
) -> Callable[[QueryCounter], torch.Tensor]:
    """Starting points of our boundary attack (its blended uniform noise), charged to foolbox."""

    def starts(counter: QueryCounter) -> torch.Tensor:
        from robustbench_lite.attacks.boundary import Boundary

        spent = torch.zeros(len(x), dtype=torch.int64)
        attack = Boundary()
        generator = torch.Generator().manual_seed(SEED)
        x0, found = attack.start(counter.view(), x, y, spent, budget, generator)
        if not bool(found.all()):
            raise RuntimeError("no starting point for some samples")
        return x0

    return starts


def _row(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    counts: torch.Tensor,
    seconds: float,
    model_seconds: float,
    *,
    linf: bool,
) -> Row:
    if linf:
        x_adv = torch.minimum(torch.maximum(x_adv, x - 0.3), x + 0.3).clamp(0, 1)
    fooled = predict(model, x_adv) != y
    dist = (x_adv - x).flatten(1).norm(dim=1)
    q = counts[fooled].double()
    return Row(
        name=name,
        success=float(fooled.double().mean()),
        median_l2=float("nan") if linf else float(dist[fooled].median()),
        mean_queries=float(q.mean()) if len(q) else float("nan"),
        median_queries=float(q.median()) if len(q) else float("nan"),
        max_queries=int(counts.max()),
        seconds=seconds,
        model_seconds=model_seconds,
    )


def _table(rows: list[Row]) -> str:
    head = (
        f"{'attack':40} {'success':>7} {'med L2':>7} {'q mean':>7} {'q med':>7} {'q max':>6} "
        f"{'s':>7} {'model s':>7} {'other s':>7}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.name:40} {r.success:7.3f} {r.median_l2:7.3f} {r.mean_queries:7.0f} "
            f"{r.median_queries:7.0f} {r.max_queries:6d} {r.seconds:7.2f} "
            f"{r.model_seconds:7.2f} {r.overhead:7.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    torch.set_num_threads(1)
    for name in MODELS:
        compare(name)


def compare(name: str) -> None:
    """Every comparison of this benchmark on the model of defense `name`."""
    model, x, y = setup(name)
    print(f"\n{PROFILE} `{name}`, {len(x)} clean-correct mnist-5k test digits")

    print(f"\nboundary (L2, minimal) at a budget of {BUDGET} queries per sample")
    mine = fastest(lambda: ours("boundary", model, x, y, BUDGET))
    fb_default = fastest(lambda: foolbox_boundary(model, x, y, BUDGET))
    fb_same = fastest(lambda: foolbox_boundary(model, x, y, BUDGET, our_starts(x, y, BUDGET)))
    lf = fastest(lambda: ours("lf-boundary", model, x, y, BUDGET))
    print(_table([mine, fb_default, fb_same, lf]))
    for label, other in (("foolbox default", fb_default), ("foolbox, our starts", fb_same)):
        print(
            f"ours / {label}: median L2 x{mine.median_l2 / other.median_l2:.2f}, "
            f"wall time x{mine.seconds / other.seconds:.2f}, "
            f"time outside the model x{mine.overhead / other.overhead:.2f}"
        )
    print(f"lf-boundary / boundary: median L2 x{lf.median_l2 / mine.median_l2:.2f}")

    print(f"\nNES (Linf 0.3) at a budget of {NES_BUDGET} queries per sample")
    nes = ours("nes", model, x, y, NES_BUDGET)
    lf_nes = ours("lf-nes", model, x, y, NES_BUDGET)
    print(_table([nes, lf_nes]))
    if nes.success and lf_nes.success:  # queries to success need a success on each side
        print(
            f"lf-nes / nes: mean queries to success x{lf_nes.mean_queries / nes.mean_queries:.2f}"
            f", median x{lf_nes.median_queries / nes.median_queries:.2f}"
        )
    else:
        print("lf-nes / nes: no ratio of queries to success (a side broke no sample)")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
