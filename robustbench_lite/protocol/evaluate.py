"""One cell's evaluation, the protocol's heart: attack through the counter, project, verify,
per-sample arrays. A pure function of (model, attack, samples, spec) that knows nothing of files.

What the attack touches never grades it: it gets copies of x and y, its own instance of the model
(built fresh from the recipe) behind an `Oracle` at its declared access, closed when `run` returns,
and that instance's fingerprint is checked after every batch; the verdict comes from another fresh
instance, the runner's own copies of x and y and its own random stream, and every adversarial
example is re-predicted on the attacked instance too: a model that answers its copies differently
is refused, not graded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from robustbench_lite.errors import RBError
from robustbench_lite.protocol import devices
from robustbench_lite.protocol.bpda import route_through_approximation
from robustbench_lite.protocol.contracts import Attack
from robustbench_lite.protocol.eot import EOT
from robustbench_lite.protocol.indicators import KINDS, QueryStream
from robustbench_lite.protocol.integrity import fingerprint, unpack_output
from robustbench_lite.protocol.losses import margin_loss
from robustbench_lite.protocol.oracle import STALE, QueryCounter
from robustbench_lite.protocol.recipe import ModelRecipe
from robustbench_lite.protocol.spec import CellSpec, derive_seed


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, draws: int = 1, batch_size: int = 500
) -> torch.Tensor:
    """Labels from the model; with draws > 1, the majority over that many stochastic passes."""
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        votes = torch.stack([model(xb).argmax(dim=1) for _ in range(draws)])
        out.append(votes[0] if draws == 1 else torch.mode(votes, dim=0).values)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64, device=x.device)


def verify(model: nn.Module, x: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """The verifier's labels, drawn from its own random stream (never the attack's)."""
    with devices.fork_rng(x.device):
        torch.manual_seed(seed)
        return predict(model, x, draws)


@dataclass
class CellArrays:
    """Per-sample outcomes of one cell, in the order of the samples given."""

    correct: torch.Tensor
    robust: torch.Tensor
    adv_pred: torch.Tensor
    queries: torch.Tensor
    distance: torch.Tensor
    x_verified: torch.Tensor
    extras: dict[str, list[Any]] = field(default_factory=dict)
    #: Indicators of attack failure per sample (protocol/indicators.py): None where unknown.
    indicators: dict[str, list[bool | None]] = field(default_factory=dict)
    #: Per sample, the answered rows outside its threat model or [0, 1] (indicators.py).
    outside: torch.Tensor | None = None


def initial(x: torch.Tensor, y: torch.Tensor, clean_pred: torch.Tensor) -> CellArrays:
    """A cell's arrays before any attack: clean outcomes, nothing queried (kept on the CPU)."""
    correct = (clean_pred == y).cpu()
    return CellArrays(
        correct=correct,
        robust=correct.clone(),
        adv_pred=clean_pred.cpu().clone(),
        queries=torch.zeros(len(y), dtype=torch.int64, device="cpu"),
        distance=torch.full((len(y),), float("nan"), device="cpu"),
        x_verified=x.cpu().clone(),
        indicators={kind: [None] * len(y) for kind in KINDS},
        outside=torch.zeros(len(y), dtype=torch.int64, device="cpu"),
    )


def batches_of(correct: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The sample indices of each batch a cell attacks: its clean-correct samples, in order."""
    targets = torch.nonzero(correct.cpu()).squeeze(1)
    return [targets[i : i + batch_size] for i in range(0, len(targets), batch_size)]


def evaluate(
    spec: CellSpec,
    attack: Attack,
    recipe: ModelRecipe,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    *,
    only: Sequence[int] | None = None,
    progress: bool = False,
) -> CellArrays:
    """Attack the clean-correct samples batch by batch and grade every result with `model`.

    `only` names the batches to run (a shard); the others keep their clean outcome and are not
    attacked. Each batch is seeded from (cell seed, batch index) alone, so a sharded, resumed or
    distributed cell gives the same per-sample arrays as one run in a single process."""
    x, y = x.clone(), y.clone()  # the runner's own copies, whatever the caller does later
    if spec.rows is not None and spec.rows < 1:
        raise RBError(
            f"a query budget of {spec.budget} affords no query of {spec.defense} under EOT with "
            f"{spec.eot_draws} draws; raise --budget"
        )
    model = recipe.make()  # grades, and is never handed out
    attacked = recipe.make()  # the attack's own instance
    sealed = fingerprint(model)
    if fingerprint(attacked) != sealed:
        raise RBError(f"two fresh builds of the model of {spec.defense} differ: refused")
    if spec.bpda:  # its backward pass through the front steps' approximations (bpda.py)
        route_through_approximation(attacked, spec.defense)
    attacked_seal = fingerprint(attacked)  # its BPDA switches included: an attack cannot flip them
    view = EOT(attacked, spec.eot_draws) if spec.eot_draws > 1 else attacked
    out = initial(x, y, clean_pred)
    batches = batches_of(out.correct, spec.batch_size)
    chosen = range(len(batches)) if only is None else only
    desc = f"{spec.defense} x {spec.cell}"
    for k in tqdm(chosen, desc=desc, disable=not progress, leave=False):
        batch = batches[k]
        seed = derive_seed(spec.seed, "batch", k)
        torch.manual_seed(seed)  # a randomized defense's draws while attacked
        generator = torch.Generator(device=x.device).manual_seed(seed)
        _attack_batch(
            spec, attack, view, model, attacked, attacked_seal, x, y, batch, k, generator, out
        )
    if fingerprint(model) != sealed:
        raise RBError(f"the grading model of {spec.defense} changed during {attack.name}: refused")
    return out


def _attack_batch(
    spec: CellSpec,
    attack: Attack,
    view: nn.Module,
    model: nn.Module,
    attacked: nn.Module,
    sealed: str,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: torch.Tensor,
    k: int,
    generator: torch.Generator,
    out: CellArrays,
) -> None:
    """One batch: the attack through the counter, the fingerprint check, the runner's verdict."""
    where = batch.to(x.device)
    xb, yb = x[where], y[where]
    counter = QueryCounter(
        view,
        len(batch),
        num_classes=spec.num_classes,
        draws=spec.eot_draws,
        stochastic=spec.randomized,
        knowledge=attack.knowledge,
        budget=spec.budget,
        owner=f"attack {attack.name}",
        cell=f"{spec.defense} x {spec.cell} (batch {k})",
        threat_model=spec.threat_model,
    )
    stream = QueryStream(xb, yb, spec.threat_model, spec.eps)
    counter.stream = stream
    clean_margin = _clean_margin(view, xb, yb, derive_seed(spec.seed, "clean-margin", k))
    stale = STALE.count
    try:
        output = attack.run(
            counter.view(),
            xb.clone(),
            yb.clone(),
            eps=spec.eps,
            budget=spec.rows,
            generator=generator,
        )
    finally:
        counter.close()
    counter.check()  # a refused query refuses the cell, even one the attack caught
    if STALE.count != stale:
        raise RBError(f"{STALE.last}; the cell {spec.defense} x {spec.cell} is refused")
    if fingerprint(attacked) != sealed:
        raise RBError(
            f"attack {attack.name} changed the model it attacked (weights, buffers or "
            f"train/eval mode) on {spec.defense}: the cell is refused"
        )
    x_adv, extras = unpack_output(attack.name, output, xb)
    extras = spec.threat_model.clip_extras(extras, spec.eps)
    _grade(spec, model, attacked, xb, yb, x_adv, extras, batch, k, attack, out)
    out.queries[batch] = counter.counts.cpu()
    if out.outside is not None:
        out.outside[batch] = stream.outside(len(batch))
    found = stream.indicators(out.robust[batch], clean_margin, minimal=attack.minimal)
    for kind, values in found.items():
        for i, v in zip(batch.tolist(), values, strict=True):
            out.indicators[kind][i] = v


def _clean_margin(view: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """The margin of each clean sample as the attack sees the model (the EOT view), on a random
    stream of its own: what `non_converging` compares the queries' best against."""
    with devices.fork_rng(x.device), torch.no_grad():
        torch.manual_seed(seed)
        return margin_loss(view(x).float(), y).cpu()


def _grade(
    spec: CellSpec,
    model: nn.Module,
    attacked: nn.Module,
    xb: torch.Tensor,
    yb: torch.Tensor,
    x_adv: torch.Tensor,
    extras: dict[str, torch.Tensor],
    batch: torch.Tensor,
    k: int,
    attack: Attack,
    out: CellArrays,
) -> None:
    """The runner's own verdict on one batch: project into the threat model, predict uncounted."""
    tm, draws = spec.threat_model, spec.prediction_draws
    seed = derive_seed(spec.seed, "verify", k)
    x_proj = tm.project(xb, x_adv, spec.eps, extras)
    pred = verify(model, x_proj, draws, seed)
    seen = verify(attacked, x_proj, draws, seed)  # the same draws: the same model must agree
    if bool((seen != pred).any()):
        raise RBError(
            f"the model of {spec.defense} answers the attacked instance and the grading instance "
            f"differently on {int((seen != pred).sum())} of {len(pred)} adversarial examples of "
            f"{attack.name} (batch {k}): the cell is refused"
        )
    fooled = pred != yb
    found, x_found = fooled, x_proj
    if attack.minimal:  # the distance of what it found, even beyond eps
        x_found = x_adv.clamp(0.0, 1.0)
        found = verify(model, x_found, draws, derive_seed(spec.seed, "verify-found", k)) != yb
    distance = torch.where(found, tm.distance(xb, x_found, extras), float("inf"))
    out.distance[batch] = distance.cpu().to(out.distance.dtype)
    out.robust[batch] = ~fooled.cpu()
    out.x_verified[batch] = x_proj.cpu()
    out.adv_pred[batch] = pred.cpu()
    for key, value in extras.items():
        column = out.extras.setdefault(key, [None] * len(out.correct))
        for i, v in zip(batch.tolist(), value.cpu().tolist(), strict=True):
            column[i] = v


def evaluate_shard(
    spec: CellSpec,
    attack: Attack,
    recipe: ModelRecipe,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    batches: list[int],
) -> CellArrays:
    """A task's entry point (running/grid/executors.py): `evaluate` on the listed batches only."""
    return evaluate(spec, attack, recipe, x, y, clean_pred, only=batches)
