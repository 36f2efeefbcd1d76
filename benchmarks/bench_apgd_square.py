"""APGD (Croce & Hein 2020) vs our PGD at equal steps, APGD-T, and Square (Andriushchenko et al.
2020) vs NES at equal query budget: robust accuracy and wall time on the same model and digits.

Models: the zoo's standard `none`, `pgd-at` and `ibp`. `BENCH_N` (default 200) clean-correct digits,
`BENCH_STEPS` (default 100) gradient steps, `BENCH_BUDGET` (default 1000) queries per sample.
`python -m benchmarks apgd_square`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.common import clean_correct, model, size, table, timed
from robustbench_lite.attacks.apgd import APGD
from robustbench_lite.attacks.nes import NES
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.attacks.square import Square
from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.threat_models import THREAT_MODELS

N = int(os.environ.get("BENCH_N", size(200, 10)))
STEPS = int(os.environ.get("BENCH_STEPS", size(100, 3)))
BUDGET = int(os.environ.get("BENCH_BUDGET", size(1000, 30)))
#: Linf eps per model: 0.3 leaves the undefended baseline nothing to measure.
EPS = {"none": 0.1, "pgd-at": 0.3, "ibp": 0.3}
MODELS = ("none", "pgd-at", "ibp")


def evaluate(
    attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
) -> tuple[float, float, float]:
    """Robust accuracy, wall seconds and mean queries per sample of one seeded run."""
    budget = None if attack.knowledge == "gradient" else BUDGET
    counter = QueryCounter(model, len(x), num_classes=10, knowledge=attack.knowledge, budget=budget)

    def run() -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        out = attack.run(counter.view(), x, y, eps=eps, budget=budget, generator=gen)
        return out.x

    x_adv, seconds = timed(run, times=1)
    x_adv = THREAT_MODELS["linf"].project(x, x_adv, eps)
    robust = float((predict(model, x_adv) == y).double().mean())
    return robust, seconds, float(counter.counts.double().mean())


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    models = {name: model(name) for name in MODELS}
    pairs: list[tuple[str, Callable[[], Attack], str, Callable[[], Attack]]] = [
        (
            f"apgd {STEPS} steps",
            lambda: APGD(steps=STEPS),
            f"pgd {STEPS} steps eps/10",
            lambda: PGD(steps=STEPS, rel_step_size=0.1),
        ),
        (
            f"apgd-t {STEPS} steps x 9",
            lambda: APGD(steps=STEPS, loss="dlr-targeted", n_target_classes=9),
            f"pgd {STEPS} x 9 restarts",
            lambda: PGD(steps=STEPS, rel_step_size=0.1, restarts=9),
        ),
        (f"square {BUDGET} q", Square, f"nes {BUDGET} q", NES),
    ]
    rows = [("model", "eps", "attack", "robust acc", "wall s", "mean q", "acc - ref", "s / ref")]
    for name, net in models.items():
        eps = EPS[name]
        x, y = clean_correct(net, N)
        for label, make, ref_label, make_ref in pairs:
            acc_ref, t_ref, q_ref = evaluate(make_ref(), net, x, y, eps)
            acc, t, q = evaluate(make(), net, x, y, eps)
            rows.append(
                (
                    name,
                    f"{eps}",
                    ref_label,
                    f"{acc_ref:.3f}",
                    f"{t_ref:.1f}",
                    f"{q_ref:.0f}",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    name,
                    f"{eps}",
                    label,
                    f"{acc:.3f}",
                    f"{t:.1f}",
                    f"{q:.0f}",
                    f"{acc - acc_ref:+.3f}",
                    f"{t / t_ref:.2f}",
                )
            )
    print(f"Linf, {N} clean-correct mnist-5k test digits per model, seed 0")
    table(rows)
