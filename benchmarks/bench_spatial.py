"""Our `spatial` grid vs foolbox.attacks.SpatialAttack: same model, digits and 31 x 5 x 5 grid.

Throughput is (transform, image) pairs evaluated per second, each side counted by a wrapper
around the model; the grid is the paper's, at eps 1 (+-30 deg, +-3 px) where the baseline falls
at the first transforms, and at eps 0.2 where most digits survive the whole grid.
"""

from __future__ import annotations

import foolbox
import torch
from torch import nn

from benchmarks.common import clean_correct, model, size, table, timed
from robustbench_lite.attacks.spatial import Spatial
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.threat_models import SPATIAL

EPSILONS, ROTATIONS, TRANSLATIONS, N = (1.0, 0.2), size(31, 3), size(5, 3), size(200, 10)
MODELS = ("none", "pgd-at", "ibp")
FB_SCALE = 28 / 27  # foolbox's pixels are (n-1)/n of ours (align_corners=True), see test_spatial


class Rows(nn.Module):
    """Counts the rows foolbox evaluates."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, 0
        self.eval()  # a fresh module trains by default; foolbox warns about that

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.model(x)


def run_both(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> list[tuple[str, ...]]:
    """Both attacks on the same grid at eps: robust accuracy, pairs, time, pairs per second."""
    attack = Spatial(rotations=ROTATIONS, translations=TRANSLATIONS)
    counted = Rows(net)
    fmodel = foolbox.PyTorchModel(counted, bounds=(0, 1))
    peer_attack = foolbox.attacks.SpatialAttack(
        max_rotation=30 * eps,
        max_translation=3 * eps * FB_SCALE,
        num_rotations=ROTATIONS,
        num_translations=TRANSLATIONS,
    )

    def ours() -> tuple[torch.Tensor, int]:
        counter = QueryCounter(net, len(x), num_classes=10)
        x_adv, extras = attack.run(
            counter.view(), x, y, eps=eps, budget=None, generator=torch.Generator()
        )
        return SPATIAL.project(x, x_adv, eps, extras), counter.total

    def peer() -> tuple[torch.Tensor, int]:
        counted.rows = 0
        x_adv, _, _ = peer_attack(fmodel, x, y)
        return x_adv, counted.rows - 2 * len(x)  # less its clean check and final verdict

    (x_ours, pairs_ours), t_ours = timed(ours, times=size(2, 1))
    (x_peer, pairs_peer), t_peer = timed(peer, times=size(2, 1))
    acc_ours = float((predict(net, x_ours) == y).double().mean())
    acc_peer = float((predict(net, x_peer) == y).double().mean())
    rate_ours, rate_peer = pairs_ours / t_ours, pairs_peer / t_peer
    return [
        (f"{eps}", "robustbench_lite spatial", f"{acc_ours:.3f}", f"{pairs_ours}",
         f"{t_ours:.2f}", f"{rate_ours:.0f}", f"{rate_ours / rate_peer:.2f}"),
        (f"{eps}", "foolbox SpatialAttack", f"{acc_peer:.3f}", f"{pairs_peer}",
         f"{t_peer:.2f}", f"{rate_peer:.0f}", f"(wall: peer / ours {t_peer / t_ours:.2f})"),
    ]  # fmt: skip


def main() -> None:
    torch.manual_seed(0)
    rows = [
        (
            "model",
            "eps",
            "attack",
            "robust acc",
            "pairs",
            "wall s",
            "pairs/s",
            "ours / peer pairs/s",
        )
    ]
    for name in MODELS:
        net = model(name)
        x, y = clean_correct(net, N)
        for eps in EPSILONS:
            rows += [(name, *row) for row in run_both(net, x, y, eps)]
    print(
        f"spatial grid {ROTATIONS} x {TRANSLATIONS} x {TRANSLATIONS}, {N} clean-correct "
        "digits per model; pairs = (transform, image) evaluations"
    )
    table(rows)
