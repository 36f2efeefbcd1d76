"""Our `pgd` vs foolbox.attacks.LinfPGD: same model, samples, steps and step size."""

from __future__ import annotations

import foolbox
import torch

from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.threat_models import THREAT_MODELS
from tests.bench.common import baseline, clean_correct, table, timed

EPSILONS, STEPS, REL_STEP, N = (0.1, 0.3), 40, 0.01 / 0.3, 500


def main() -> None:
    torch.manual_seed(0)
    model = baseline("standard")
    x, y = clean_correct(model, N)
    linf = THREAT_MODELS["linf"]
    fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
    peer_attack = foolbox.attacks.LinfPGD(rel_stepsize=REL_STEP, steps=STEPS, random_start=True)
    rows = [("eps", "attack", "robust acc", "wall s", "peer time / ours")]
    for eps in EPSILONS:

        def ours(eps: float = eps) -> torch.Tensor:
            counter = QueryCounter(model, len(x), num_classes=10)
            attack = PGD(steps=STEPS, rel_step_size=REL_STEP)
            return attack.run(counter, x, y, eps=eps, budget=None, generator=torch.Generator())

        def peer(eps: float = eps) -> torch.Tensor:
            _, clipped, _ = peer_attack(fmodel, x, y, epsilons=eps)
            return clipped

        x_ours, t_ours = timed(ours)
        x_peer, t_peer = timed(peer)
        acc_ours = float((predict(model, linf.project(x, x_ours, eps)) == y).double().mean())
        acc_peer = float((predict(model, linf.project(x, x_peer, eps)) == y).double().mean())
        rows.append((f"{eps}", "robustbench_lite pgd", f"{acc_ours:.3f}", f"{t_ours:.2f}", ""))
        rows.append(
            (
                f"{eps}",
                "foolbox LinfPGD",
                f"{acc_peer:.3f}",
                f"{t_peer:.2f}",
                f"{t_peer / t_ours:.2f}",
            )
        )
    print(
        f"Linf PGD, {STEPS} steps of eps*{REL_STEP:.4f}, random start, {len(x)} clean-correct digits"
    )
    table(rows)
