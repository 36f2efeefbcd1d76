"""Is the standard `pgd` strong enough? Robust accuracy of the trained defenses vs PGD steps,
restarts, step-size rule and loss (Engstrom, Ilyas and Athalye 2018: ALP fell under more steps).

Uses the zoo's standard-profile models (benchmarks/common.model) and the
whole mnist-5k test split at the default Linf eps. `python -m benchmarks.bench_pgd_strength`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

import torch

from benchmarks.common import PROFILE, SMOKE
from benchmarks.common import model as trained
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import (
    attack_class,
    defense_class,
    instantiate,
    load_dataset,
)

log = logging.getLogger(__name__)

DEFENSES = ("pgd-at", "alp", "ibp")
EPS = 0.3
#: (label, pgd hyper-parameters); the standard profile is steps=100, step=eps/10, restarts=10.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("steps=10", {"steps": 10}),
    ("steps=40", {"steps": 40}),
    ("steps=100", {"steps": 100}),
    ("steps=200", {"steps": 200}),
    ("steps=40 restarts=5", {"steps": 40, "restarts": 5}),
    ("steps=40 restarts=10", {"steps": 40, "restarts": 10}),
    ("steps=40 step=eps/10", {"steps": 40, "rel_step_size": 0.1}),
    ("steps=100 step=eps/10", {"steps": 100, "rel_step_size": 0.1}),
    ("steps=40 step=eps/10 restarts=5", {"steps": 40, "rel_step_size": 0.1, "restarts": 5}),
    ("steps=40 step=eps/10 restarts=10", {"steps": 40, "rel_step_size": 0.1, "restarts": 10}),
    (
        "steps=100 step=eps/10 restarts=10 (standard)",
        {"steps": 100, "rel_step_size": 0.1, "restarts": 10},
    ),
    ("steps=100 margin loss", {"steps": 100, "loss": "margin"}),
)


def robust_accuracy(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, **config: Any
) -> float:
    """Fraction of samples classified correctly and not fooled by pgd(**config) at EPS."""
    attack = attack_class("pgd")(**config)
    correct = predict(model, x) == y
    idx = torch.nonzero(correct).squeeze(1)
    robust = correct.clone()
    generator = torch.Generator().manual_seed(0)
    counter = QueryCounter(model, len(idx), num_classes=10)
    x_adv = attack.run(counter.view(), x[idx], y[idx], eps=EPS, budget=None, generator=generator).x
    x_adv = torch.minimum(torch.maximum(x_adv, x[idx] - EPS), x[idx] + EPS).clamp(0, 1)
    robust[idx] = predict(model, x_adv) == y[idx]
    return float(robust.double().mean())


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    test = load_dataset("mnist-5k", "test")
    if SMOKE:
        test = dataclasses.replace(test, x=test.x[:20], y=test.y[:20])
    print(f"{'defense':8} {'pgd setting':46} {'robust':>7} {'cpu s':>6}", flush=True)
    names = os.environ.get("BENCH_DEFENSES")
    for name in names.split(",") if names else DEFENSES:
        defense = instantiate(defense_class(name), PROFILE)
        model = trained(name)
        settings = list(SETTINGS) if not SMOKE else [("steps=2", {"steps": 2})]
        if hasattr(defense, "attack"):  # adversarial training: also its own training attack
            settings.insert(0, ("training attack", defense.attack().config()))
        for label, config in settings:
            start = time.process_time()
            acc = robust_accuracy(model, test.x, test.y, **config)
            print(f"{name:8} {label:46} {acc:7.3f} {time.process_time() - start:6.1f}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
