"""Scale: the quick grid's wall time serial vs Ray with 2 workers (a ratio), and per attack the
share of a standard cell's wall time spent inside the model's forward and backward passes.

Run: `python -m benchmarks.bench_scale` (or `make bench`), alone on the machine.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import PROFILE, size, table
from robustbench_lite.protocol.evaluate import evaluate, predict
from robustbench_lite.protocol.recipe import recipe_of
from robustbench_lite.protocol.registry import (
    attack_names,
    defense_class,
    instantiate,
    load_dataset,
)
from robustbench_lite.running.grid.runner import Runner

GRID_ATTACKS = ["pgd", "pgd-l2", "apgd", "square", "boundary", "spatial"][: size(6, 2)]
GRID_DEFENSES = ["none", "pgd-at"]
N = size(100, 5)
SHARE_N = int(os.environ.get("BENCH_SHARE_N", size(100, 3)))


class Timed(torch.nn.Module):
    """The model with the seconds of its forward and backward passes added to `SECONDS` (a
    module global, since the runner deep-copies the model it hands an attack)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_full_backward_pre_hook(lambda *_: _start())
        self.register_full_backward_hook(lambda *_: _stop())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _start()
        out = self.model(x)
        _stop()
        return out


SECONDS = [0.0, 0.0]  # total, start of the pass in flight


def _start() -> None:
    SECONDS[1] = time.perf_counter()


def _stop() -> None:
    SECONDS[0] += time.perf_counter() - SECONDS[1]


def _grid(executor: str, root: Path) -> float:
    start = time.perf_counter()
    Runner(profile="quick", n=N, results_dir=root, quiet=True, executor=executor).run(
        GRID_ATTACKS, GRID_DEFENSES
    )
    return time.perf_counter() - start


def model_share(n: int = SHARE_N) -> list[tuple[str, ...]]:
    """Per attack of the standard profile: wall seconds of its cell on the first `n` digits of
    the standard pgd-at model (robust, so the attacks run their whole length) and the share of
    them inside the model."""
    runner = Runner(profile=PROFILE, quiet=True)
    defense = instantiate(defense_class("pgd-at"), PROFILE)
    model = runner.model(defense)
    test = load_dataset("mnist-5k", "test")
    x, y = test.x[:n], test.y[:n]
    clean = predict(model, x)
    rows = [("attack", "wall s", "model s", "inside model")]
    for name in attack_names():
        attack = runner._attack(name)
        runner.models.hand_surrogates([attack], runner.settings)  # the surrogate, outside the clock
        spec = runner.plan.cell_spec(defense, attack)
        recipe = recipe_of(defense.name, lambda: Timed(copy.deepcopy(model)), Timed(model), "cpu")
        SECONDS[0] = 0.0
        start = time.perf_counter()
        evaluate(spec, attack, recipe, x, y, clean)
        wall = time.perf_counter() - start
        rows.append((name, f"{wall:.1f}", f"{SECONDS[0]:.1f}", f"{SECONDS[0] / wall:.0%}"))
    return rows


def main() -> None:
    torch.set_num_threads(1)
    print(f"quick grid: {len(GRID_ATTACKS)} attacks x {GRID_DEFENSES} on {N} digits")
    Runner(profile="quick", quiet=True).run(["pgd"], GRID_DEFENSES)  # train outside the clock
    with tempfile.TemporaryDirectory() as tmp:
        serial = _grid("local", Path(tmp) / "local")
        try:
            import ray
        except ImportError:
            print("ray not installed: pip install -e '.[ray]'")
            return
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            start = time.perf_counter()
            ray.get([ray.remote(lambda: 0).remote() for _ in range(2)])  # workers up
            warm = time.perf_counter() - start
            distributed = _grid("ray", Path(tmp) / "ray")
        finally:
            ray.shutdown()
    table(
        [
            ("executor", "wall s", "ratio to serial"),
            ("local (1 process)", f"{serial:.1f}", "1.00"),
            ("ray, 2 workers", f"{distributed:.1f}", f"{distributed / serial:.2f}"),
        ]
    )
    print(f"(Ray's worker start-up, {warm:.1f} s, is outside the timing)")
    print(f"\nstandard cells on pgd-at, {SHARE_N} digits: wall time inside the model (fwd + bwd):")
    table(model_share())
