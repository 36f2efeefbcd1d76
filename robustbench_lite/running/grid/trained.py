"""A defense's model, from untrained to evaluated: built (initial weights seeded from the run),
trained as a task an executor can run anywhere, turned into the recipe every instance is made
from, its clean predictions, and a certifying defense's certificates."""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from robustbench_lite.data import Shape
from robustbench_lite.errors import RBError, guarded
from robustbench_lite.protocol import interval_bounds
from robustbench_lite.protocol.contracts import Attack, DataSource, Defense
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.recipe import ModelRecipe, recipe_of
from robustbench_lite.protocol.spec import derive_seed
from robustbench_lite.protocol.threat_models import TM
from robustbench_lite.running.grid.jobs import JobContext
from robustbench_lite.running.own.data import data_key
from robustbench_lite.store import certificates
from robustbench_lite.store.files import config_hash, seal, write_json
from robustbench_lite.store.records import versions
from robustbench_lite.store.reuse import is_current

log = logging.getLogger(__name__)


def build_model(defense: Defense, source: DataSource, seed: int) -> nn.Module:
    """The untrained model for the data's shape and classes, its initial weights seeded from
    (run seed, dataset, defense). Images too small for its architecture (a layer left with no
    weights) are one clear line, not torch's warnings and then an error deep in training."""
    torch.manual_seed(derive_seed(seed, "init", source.name, defense.name))
    with (
        guarded(f"building the model of defense {defense.name}"),
        warnings.catch_warnings(record=True) as caught,
    ):
        model = defense.build(source.num_classes, cast(Shape, tuple(source.shape)))
    empty = [name for name, p in model.named_parameters() if p.numel() == 0]
    if empty:
        raise RBError(
            f"defense {defense.name} cannot take {'x'.join(map(str, source.shape))} images of "
            f"{source.name}: they are too small for its architecture ({empty[0]} is empty)"
        )
    for w in caught:  # a sound model's warnings are shown as usual
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    return model


def train_model(
    defense: Defense, source: DataSource, seed: int, progress: bool
) -> tuple[dict[str, torch.Tensor], float]:
    """Train `defense` on the data's training split: (state dict, wall seconds). A task of its
    own, so its time goes into the model cache's JSON and never into a cell's."""
    train = source.load("train")  # data without a training split fail before any model code
    model = build_model(defense, source, seed)
    log.info("training %s on %s (%d samples)", defense.name, source.name, len(train))
    generator = torch.Generator().manual_seed(derive_seed(seed, "train", source.name, defense.name))
    eps = source.default_eps(TM.LINF)
    start = time.perf_counter()
    with guarded(f"training defense {defense.name}"):
        defense.fit(model, train.x, train.y, generator=generator, progress=progress, eps=eps)
    seconds = time.perf_counter() - start
    log.info("trained %s in %.1f s", defense.name, seconds)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, seconds


def model_recipe(
    defense: Defense, source: DataSource, seed: int, trained: nn.Module, device: torch.device | str
) -> ModelRecipe:
    """How every instance of a defense's trained model is made: its `build`, then its weights."""
    build = functools.partial(build_model, defense, source, seed)
    return recipe_of(defense.name, build, trained, device)


class Evaluated:
    """A defense's model recipe (its trained weights) and its clean predictions on the run's
    samples, made on first use and shared by its certificates and attack cells."""

    def __init__(
        self,
        ctx: JobContext,
        defense: Defense,
        x: torch.Tensor,
        trained: Callable[[], nn.Module],
    ) -> None:
        self.ctx, self.defense, self.x, self.trained = ctx, defense, x, trained
        self._value: tuple[ModelRecipe, torch.Tensor] | None = None

    def get(self) -> tuple[ModelRecipe, torch.Tensor]:
        if self._value is None:
            plan, defense = self.ctx.plan, self.defense
            recipe = model_recipe(defense, plan.source, plan.seed, self.trained(), self.x.device)
            grader = recipe.make()
            torch.manual_seed(derive_seed(plan.seed, "clean", plan.dataset, defense.name))
            with guarded(f"the model of {defense.name} on clean inputs"):
                clean = predict(grader, self.x, defense.prediction_draws())
            self._value = (recipe, clean)
        return self._value


def certify_defense(
    ctx: JobContext,
    defense: Defense,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: list[Attack],
    evaluated: Evaluated,
    *,
    weights: str | None,
) -> None:
    """Certificates of a certifying defense on the attacks' samples, at the dataset's default
    Linf eps and at every other Linf eps an attack runs at.

    A certificate is the defense's word until the runner checks it: after the defense certifies
    its own instance, the runner computes IBP bounds (Gowal et al. 2018) on a fresh instance of
    its own where the model is made of layers they cover, and records its own flags (the claim
    beside them, however it differs); where it cannot, the claim is filed as claimed."""
    plan = ctx.plan
    default = plan.source.default_eps(certificates.THREAT_MODEL)
    linf = [plan.eps_of(a) for a in attacks if a.threat_model == certificates.THREAT_MODEL]
    for eps in certificates.eps_values(default, linf):
        config = plan.certificate_config(defense, len(y), eps)
        digest = config_hash(config)
        path = ctx.layout.certificate(defense.name, certificates.suffix(eps, default))
        if is_current(path, digest, weights, data_key(plan.source)):
            continue
        recipe, clean_pred = evaluated.get()  # loaded (or trained) before the clock starts
        start = time.perf_counter()
        correct = (clean_pred == y).cpu()
        # The defense certifies on an instance of its own: nothing it does touches the grader.
        with guarded(f"the certificate of defense {defense.name}"):
            claimed = defense.certify(recipe.make(), x, y, eps).to(torch.bool).cpu()
        if claimed.shape != correct.shape:
            raise RBError(
                f"defense {defense.name} certified {tuple(claimed.shape)} flags for "
                f"{len(correct)} samples"
            )
        own, reason = runner_certificate(recipe, x, y, eps)
        if own is None:
            log.warning("%s: certificate recorded as claimed (%s)", defense.name, reason)
            record = certificates.record(config, digest, correct, claimed)
        else:
            if not torch.equal(own, claimed):
                log.warning(
                    "%s: claims %.3f certified at eps %g, the runner's IBP certifies %.3f",
                    defense.name,
                    float(claimed.double().mean()),
                    eps,
                    float(own.double().mean()),
                )
            verifier = certificates.VERIFIED_BY
            record = certificates.record(
                config, digest, correct, own, claimed=claimed, verified_by=verifier
            )
        record.update(
            {
                "unverifiable": reason,
                "weights_sha256": weights,
                "data_sha256": plan.source.content_sha256(),
                "versions": versions(),
                "wall_time_s": round(time.perf_counter() - start, 3),
            }
        )
        write_json(path, seal(record))
        log.info("%s: certified %.3f (%s)", defense.name, record["certified_acc"], path)


def runner_certificate(
    recipe: ModelRecipe, x: torch.Tensor, y: torch.Tensor, eps: float
) -> tuple[torch.Tensor | None, str | None]:
    """The runner's own IBP certificate (float64) on a fresh instance nobody else holds, or
    (None, why not) where interval bounds do not follow the model's forward pass."""
    model = recipe.make()
    reason = interval_bounds.unverifiable(model)
    if reason is not None:
        return None, reason
    with guarded(f"the runner's IBP certificate of {recipe.name}"):
        return interval_bounds.certify(model, x, y, eps).cpu(), None
