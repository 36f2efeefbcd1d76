"""Units of work besides attack cells: training a defense (a task an executor can run anywhere),
a certifying defense's certificates, and a model's diagnostics, each written beside its cells."""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robustbench_lite import certified, data, diagnostics
from robustbench_lite.cache import config_hash, seal, write_json
from robustbench_lite.cell import predict
from robustbench_lite.errors import guarded
from robustbench_lite.executors import Task, timed
from robustbench_lite.plan import derive_seed
from robustbench_lite.plugins import Attack, Defense, threat_model
from robustbench_lite.recipe import ModelRecipe, recipe_of
from robustbench_lite.store import RESULT_SCHEMA, versions

if TYPE_CHECKING:
    from robustbench_lite.runner import Runner

log = logging.getLogger(__name__)


def build_model(defense: Defense, dataset: str, seed: int) -> nn.Module:
    """The untrained model, its initial weights seeded from (run seed, dataset, defense)."""
    torch.manual_seed(derive_seed(seed, "init", dataset, defense.name))
    with guarded(f"building the model of defense {defense.name}"):
        return defense.build(10)


def train_model(
    defense: Defense, dataset: str, seed: int, progress: bool
) -> tuple[dict[str, torch.Tensor], float]:
    """Train `defense` on the dataset's training split: (state dict, wall seconds). A task of its
    own, so its time goes into the model cache's JSON and never into a cell's."""
    model = build_model(defense, dataset, seed)
    train = data.load(dataset, "train")
    log.info("training %s on %s (%d samples)", defense.name, dataset, len(train))
    generator = torch.Generator().manual_seed(derive_seed(seed, "train", dataset, defense.name))
    start = time.perf_counter()
    with guarded(f"training defense {defense.name}"):
        defense.fit(model, train.x, train.y, generator=generator, progress=progress)
    seconds = time.perf_counter() - start
    log.info("trained %s in %.1f s", defense.name, seconds)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, seconds


def certify_defense(
    runner: Runner,
    defense: Defense,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: list[Attack],
    evaluated: Evaluated,
) -> None:
    """Certificates of a certifying defense on the attacks' samples (see certified.py)."""
    default = threat_model(certified.THREAT_MODEL).default_eps[runner.dataset]
    linf = [runner.eps_of(a) for a in attacks if a.threat_model == certified.THREAT_MODEL]
    for eps in certified.eps_values(default, linf):
        suffix = certified.suffix(eps, default)
        config = {
            "schema": RESULT_SCHEMA,
            "dataset": runner.dataset,
            "n": len(y),
            "seed": runner.seed,
            "model_key": runner.model_key(defense)[0],
            "defense": {"name": defense.name, "config": defense.config()},
            "threat_model": certified.THREAT_MODEL,
            "eps": eps,
            "column": certified.COLUMN + suffix,
        }
        digest = config_hash(config)
        path = runner.cell_dir / defense.name / f"{certified.STEM}{suffix}.json"
        if certified.is_current(path, digest, runner.weights_id(defense)):
            continue
        recipe, clean_pred = evaluated.get()  # loaded (or trained) before the clock starts
        start = time.perf_counter()
        correct = (clean_pred == y).cpu()
        # The defense certifies on an instance of its own: nothing it does touches the grader.
        with guarded(f"the certificate of defense {defense.name}"):
            flags = defense.certify(recipe.make(), x, y, eps).to(torch.bool).cpu()
        record = certified.record(config, digest, correct, flags)
        record.update(
            {
                "weights_sha256": runner.weights_id(defense),
                "versions": versions(),
                "wall_time_s": round(time.perf_counter() - start, 3),
            }
        )
        write_json(path, seal(record))
        log.info("%s: certified %.3f (%s)", defense.name, record["certified_acc"], path)


def _checks_on_fresh(recipe: ModelRecipe, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> Any:
    """diagnostics.run_checks on an instance of their own, built fresh from the recipe."""
    model = recipe.make()
    with guarded(f"the diagnostics of the model of {recipe.name}"):
        return diagnostics.run_checks(model, x, y, **kw)


class DiagnosticsJob:
    """The model's diagnostics (diagnostics.py), once per model, beside its cells: a task that
    runs next to the cells' shards, not on the driver before them."""

    def __init__(
        self,
        runner: Runner,
        defense: Defense,
        recipe: ModelRecipe,
        x: torch.Tensor,
        y: torch.Tensor,
        clean_pred: torch.Tensor,
    ) -> None:
        self.defense = defense
        eot_draws = runner.eot_draws(defense)
        self.config = diagnostics.config(
            runner.model_key(defense)[0], runner.dataset, runner.seed, eot_draws
        )
        self.config["weights_sha256"] = runner.weights_id(defense)
        self.digest = config_hash(self.config)
        self.path = diagnostics.path(runner.cell_dir, defense.name)
        self.tasks: list[Task] = []
        if not diagnostics.is_current(self.path, self.digest):
            keep = clean_pred == y
            checks = functools.partial(
                _checks_on_fresh,
                randomized=defense.randomized,
                eot_draws=eot_draws,
                prediction_draws=defense.prediction_draws(),
                seed=derive_seed(runner.seed, "diagnostics", runner.dataset, defense.name),
            )
            key = (diagnostics.STEM, defense.name)
            self.tasks = [Task(key, timed, (checks, recipe, x[keep], y[keep]))]
        self.remaining = {task.key for task in self.tasks}

    def done(self, task: Task, result: tuple[dict[str, Any], float]) -> None:
        found, seconds = result
        record = {"defense": self.defense.name, "config": self.config, "config_hash": self.digest}
        record.update(found)
        record["weights_sha256"] = self.config["weights_sha256"]
        record["wall_time_s"] = round(seconds, 3)
        write_json(self.path, seal(record))
        for code, detail in found["flags"].items():
            log.warning("%s: %s (%s)", self.defense.name, code, detail)
        self.remaining.discard(task.key)

    def failed(self, task: Task, exc: BaseException) -> None:
        raise exc  # a check of ours, not a plugin's: its failure is a bug to see, not a flag

    def finish(self) -> None:
        pass


def model_recipe(runner: Runner, defense: Defense, trained: nn.Module) -> ModelRecipe:
    """How every instance of a defense's trained model is made: its `build`, then its weights."""
    build = functools.partial(build_model, defense, runner.dataset, runner.seed)
    return recipe_of(defense.name, build, trained, runner._device)


class Evaluated:
    """A defense's model recipe (its trained weights) and its clean predictions on the run's
    samples, made on first use and shared by its certificates and attack cells."""

    def __init__(self, runner: Runner, defense: Defense, x: torch.Tensor) -> None:
        self.runner, self.defense, self.x = runner, defense, x
        self._value: tuple[ModelRecipe, torch.Tensor] | None = None

    def get(self) -> tuple[ModelRecipe, torch.Tensor]:
        if self._value is None:
            runner, defense = self.runner, self.defense
            recipe = model_recipe(runner, defense, runner.model(defense))
            grader = recipe.make()
            torch.manual_seed(derive_seed(runner.seed, "clean", runner.dataset, defense.name))
            with guarded(f"the model of {defense.name} on clean inputs"):
                clean = predict(grader, self.x, defense.prediction_draws())
            self._value = (recipe, clean)
        return self._value
