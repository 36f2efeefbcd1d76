"""Our `pgd` / `pgd-l2` vs foolbox's LinfPGD / L2PGD: same model, samples, steps, relative step
size and random start, on the undefended `none` model and the robust `pgd-at` and `ibp` ones
(where early stopping cannot make a PGD look fast). Best of 3 wall times; ratio peer / ours."""

from __future__ import annotations

import foolbox
import torch

from benchmarks.common import clean_correct, model, size, table, timed
from robustbench_lite.attacks.pgd import PGD
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.threat_models import THREAT_MODELS

STEPS, REL_STEP, N = size(40, 3), 0.01 / 0.3, size(500, 20)
MODELS = ("none", "pgd-at", "ibp")
#: eps per (model, norm): the robust models at their training radius, `none` where it holds some.
EPS = {"none": {"linf": 0.1, "l2": 1.0}, "pgd-at": {"linf": 0.3, "l2": 1.5}}
EPS["ibp"] = EPS["pgd-at"]
PEERS = {"linf": foolbox.attacks.LinfPGD, "l2": foolbox.attacks.L2PGD}


def compare(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, eps: float):
    """Robust accuracy and best wall time of ours and the peer's on the same digits."""
    ball = THREAT_MODELS[norm]
    fmodel = foolbox.PyTorchModel(net, bounds=(0, 1))
    peer_attack = PEERS[norm](rel_stepsize=REL_STEP, steps=STEPS, random_start=True)

    def ours() -> torch.Tensor:
        counter = QueryCounter(net, len(x), num_classes=10)
        attack = PGD(norm=norm, steps=STEPS, rel_step_size=REL_STEP)
        gen = torch.Generator().manual_seed(0)
        return attack.run(counter.view(), x, y, eps=eps, budget=None, generator=gen).x

    def peer() -> torch.Tensor:
        _, clipped, _ = peer_attack(fmodel, x, y, epsilons=eps)
        return clipped

    x_ours, t_ours = timed(ours)
    x_peer, t_peer = timed(peer)
    acc_ours = float((predict(net, ball.project(x, x_ours, eps)) == y).double().mean())
    acc_peer = float((predict(net, ball.project(x, x_peer, eps)) == y).double().mean())
    return acc_ours, t_ours, acc_peer, t_peer


def main() -> None:
    torch.manual_seed(0)
    rows = [
        ("model", "threat", "ours robust", "foolbox robust", "ours s", "foolbox s", "foolbox/ours")
    ]
    for name in MODELS:
        net = model(name)
        x, y = clean_correct(net, N)
        for norm in ("linf", "l2"):
            eps = EPS[name][norm]
            acc_o, t_o, acc_p, t_p = compare(net, x, y, norm, eps)
            rows.append((name, f"{norm} {eps}", f"{acc_o:.3f}", f"{acc_p:.3f}",
                         f"{t_o:.2f}", f"{t_p:.2f}", f"{t_p / t_o:.2f}"))  # fmt: skip
    print(
        f"PGD, {STEPS} steps of eps*{REL_STEP:.4f}, random start, {N} clean-correct digits per "
        f"model, {torch.get_num_threads()} thread(s), best of 3"
    )
    table(rows)
