"""Our `square-l2`, `fab`/`fab-l2` and `fmn`/`fmn-l2` against independent implementations on the
same standard models, digits, eps and budget: torchattacks' Square (L2) and FAB (targeted, as
AutoAttack runs it), and adv-lib's FMN (Rony; torchattacks has no FMN). Both sides are graded by
our own grader: the point projected onto the threat model's eps-ball (the runner's projection)
and re-predicted. Per row: robust accuracy of each, the digits each breaks that the other does
not, wall time, and the ratios (accuracy difference, time ours / theirs); for the minimal
attacks also the median distance over the digits both fool.

Models: the zoo's standard `ibp`, `pgd-at` and `alp` (the quick ones in a smoke run). `BENCH_N`
(default 100) clean-correct mnist-5k test digits, `BENCH_BUDGET` (default 5,000, AutoAttack's
Square) queries per digit for Square; FAB runs AutoAttack's standard FAB-T (9 targets x 100
steps) and FMN 1,000 steps on both sides. The references are installed without dependencies
(`make bench` does it; neither needs torchvision, adv-lib's package imports are bypassed): where
one is missing, its rows show ours alone. `BENCH_ATTACKS=fab,fab-l2` runs only those rows.
`python -m benchmarks independent`.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common import clean_correct, model, size, table, timed
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, instantiate
from robustbench_lite.protocol.threat_models import THREAT_MODELS

log = logging.getLogger(__name__)

N = int(os.environ.get("BENCH_N", size(100, 4)))
BUDGET = int(os.environ.get("BENCH_BUDGET", size(5_000, 30)))
FAB_STEPS = size(100, 3)
FMN_STEPS = size(1_000, 5)
EPS = {"linf": 0.3, "l2": 1.5}  # mnist-5k's defaults
MODELS = ("ibp", "pgd-at", "alp")
#: `BENCH_ATTACKS=fab,fab-l2` measures only those of our attacks (default: all five).
ONLY = {a for a in os.environ.get("BENCH_ATTACKS", "").split(",") if a}

Ref = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Side:
    """One implementation's run: per-digit broken (at eps, by our grader), distance, seconds."""

    broken: torch.Tensor
    distance: torch.Tensor
    seconds: float


def _torchattacks() -> Any | None:
    try:
        return importlib.import_module("torchattacks")
    except ImportError as err:  # not a CI dependency: `make bench` installs it
        log.warning("torchattacks unavailable (%s): its rows show ours alone", err)
        return None


def _adv_lib_fmn() -> Callable[..., torch.Tensor] | None:
    """adv-lib's fmn, imported without adv_lib.attacks' __init__ (it imports every attack, and
    one needs torchvision)."""
    try:
        root = Path(importlib.import_module("adv_lib").__file__ or "").parent
        for sub in ("attacks", "utils"):
            if f"adv_lib.{sub}" not in sys.modules:
                package = types.ModuleType(f"adv_lib.{sub}")
                package.__path__ = [str(root / sub)]
                sys.modules[f"adv_lib.{sub}"] = package
        module = importlib.import_module("adv_lib.attacks.fast_minimum_norm")
    except ImportError as err:
        log.warning("adv-lib unavailable (%s): the FMN rows show ours alone", err)
        return None
    return module.fmn  # type: ignore[no-any-return]


def _grade(net: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, tm: str) -> Side:
    ball = THREAT_MODELS[tm]
    graded = ball.project(x, x_adv.detach(), EPS[tm])
    broken = predict(net, graded) != y
    distance = torch.where(predict(net, x_adv.detach()) != y, ball.distance(x, x_adv), math.inf)
    return Side(broken, distance, 0.0)


def ours(name: str, overrides: dict[str, Any]) -> Ref:
    """Our attack `name` (standard profile, `overrides`) run through the query counter."""

    def run(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = instantiate(attack_class(name), "standard", overrides)
        budget = None if attack.knowledge == "gradient" else BUDGET
        counter = QueryCounter(
            net, len(x), num_classes=10, knowledge=attack.knowledge, budget=budget
        )
        gen = torch.Generator().manual_seed(0)
        out = attack.run(
            counter.view(), x, y, eps=EPS[attack.threat_model], budget=budget, generator=gen
        )
        counter.close()
        return out.x

    return run


def references() -> dict[str, Ref | None]:
    """The independent implementation of each of our attacks, None where not installed."""
    ta, fmn = _torchattacks(), _adv_lib_fmn()
    refs: dict[str, Ref | None] = {}
    for tm, norm in (("linf", "Linf"), ("l2", "L2")):
        refs[f"fab/{tm}"] = None if ta is None else _fab(ta, norm, EPS[tm])
        refs[f"fmn/{tm}"] = None if fmn is None else _fmn(fmn, math.inf if tm == "linf" else 2.0)
    refs["square/l2"] = None if ta is None else _square(ta)
    return refs


def _fab(ta: Any, norm: str, eps: float) -> Ref:
    def run(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = ta.FAB(net, norm=norm, eps=eps, steps=FAB_STEPS, n_restarts=1, seed=0,
                        multi_targeted=True, n_classes=10)  # fmt: skip
        return attack(x, y)  # type: ignore[no-any-return]

    return run


def _square(ta: Any) -> Ref:
    def run(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = ta.Square(net, norm="L2", eps=EPS["l2"], n_queries=BUDGET, p_init=0.8, seed=0)
        return attack(x, y)  # type: ignore[no-any-return]

    return run


def _fmn(fmn: Callable[..., torch.Tensor], norm: float) -> Ref:
    def run(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)
        return fmn(net, x, y, norm=norm, steps=FMN_STEPS)

    return run


PAIRS = (  # (label, threat model, our attack, its overrides, reference key, reference's name)
    ("square-l2", "l2", "square-l2", {}, "square/l2", "torchattacks Square L2"),
    ("fab", "linf", "fab", {"steps": FAB_STEPS}, "fab/linf", "torchattacks FAB-T Linf"),
    ("fab-l2", "l2", "fab-l2", {"steps": FAB_STEPS}, "fab/l2", "torchattacks FAB-T L2"),
    ("fmn", "linf", "fmn", {"steps": FMN_STEPS}, "fmn/linf", "adv-lib fmn Linf"),
    ("fmn-l2", "l2", "fmn-l2", {"steps": FMN_STEPS}, "fmn/l2", "adv-lib fmn L2"),
)


def _side(run: Ref, net: nn.Module, x: torch.Tensor, y: torch.Tensor, tm: str) -> Side:
    x_adv, seconds = timed(lambda: run(net, x, y), times=1)
    side = _grade(net, x, y, x_adv, tm)
    side.seconds = seconds
    return side


def _median(d: torch.Tensor) -> str:
    return f"{float(d.median()):.3f}" if len(d) else "-"


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    refs = references()
    rows = [("model", "attack", "eps", "ours acc", "ref acc", "only ours", "only ref")]
    rows[0] += ("ours s", "ref s", "acc diff", "s ratio", "med d ours", "med d ref", "reference")
    for name in MODELS:
        net = model(name)
        x, y = clean_correct(net, N)
        for label, tm, attack, overrides, key, ref_name in PAIRS:
            if ONLY and label not in ONLY:
                continue
            mine = _side(ours(attack, overrides), net, x, y, tm)
            ref_run = refs[key]
            theirs = None if ref_run is None else _side(ref_run, net, x, y, tm)
            acc = 1 - float(mine.broken.double().mean())
            cells = [name, label, f"{EPS[tm]}", f"{acc:.3f}"]
            if theirs is None:
                blank = ("-",) * 3
                rows.append((*cells, *blank, f"{mine.seconds:.1f}", *blank, "-", "-", ref_name))
                continue
            ref_acc = 1 - float(theirs.broken.double().mean())
            both = torch.isfinite(mine.distance) & torch.isfinite(theirs.distance)
            minimal = attack.startswith(("fab", "fmn"))
            rows.append(
                (
                    *cells,
                    f"{ref_acc:.3f}",
                    str(int((mine.broken & ~theirs.broken).sum())),
                    str(int((theirs.broken & ~mine.broken).sum())),
                    f"{mine.seconds:.1f}",
                    f"{theirs.seconds:.1f}",
                    f"{acc - ref_acc:+.3f}",
                    f"{mine.seconds / max(theirs.seconds, 1e-9):.2f}",
                    _median(mine.distance[both]) if minimal else "-",
                    _median(theirs.distance[both]) if minimal else "-",
                    ref_name,
                )
            )
            log.info("%s %s done", name, label)
    print(f"{N} clean-correct mnist-5k test digits per model, seed 0, Square {BUDGET} queries")
    table(rows)
