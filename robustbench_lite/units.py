"""Units of work besides attack cells: training a defense (a task an executor can run anywhere),
a certifying defense's certificates, and a model's diagnostics, each written beside its cells."""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robustbench_lite import certified, data, diagnostics
from robustbench_lite.cache import config_hash, seal, write_json
from robustbench_lite.cell import predict
from robustbench_lite.plan import derive_seed
from robustbench_lite.plugins import Attack, Defense, threat_model
from robustbench_lite.store import RESULT_SCHEMA, versions

if TYPE_CHECKING:
    from robustbench_lite.runner import Runner

log = logging.getLogger(__name__)


def build_model(defense: Defense, dataset: str, seed: int) -> nn.Module:
    """The untrained model, its initial weights seeded from (run seed, dataset, defense)."""
    torch.manual_seed(derive_seed(seed, "init", dataset, defense.name))
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
        model, clean_pred = evaluated.get()  # loaded (or trained) before the clock starts
        start = time.perf_counter()
        correct = (clean_pred == y).cpu()
        # The defense certifies on a copy: nothing it does can touch the grading model.
        flags = defense.certify(copy.deepcopy(model), x, y, eps).to(torch.bool).cpu()
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


def diagnose_model(
    runner: Runner,
    defense: Defense,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
) -> dict[str, Any]:
    """The model's diagnostics (diagnostics.py), once per model, beside its cells."""
    eot_draws = runner.eot_draws(defense)
    config = diagnostics.config(
        runner.model_key(defense)[0], runner.dataset, runner.seed, eot_draws
    )
    config["weights_sha256"] = runner.weights_id(defense)
    digest = config_hash(config)
    path = diagnostics.path(runner.cell_dir, defense.name)
    if diagnostics.is_current(path, digest):
        return diagnostics.load(path) or {}
    keep = clean_pred == y
    start = time.perf_counter()
    found = diagnostics.run_checks(
        copy.deepcopy(model),
        x[keep],
        y[keep],
        randomized=defense.randomized,
        eot_draws=eot_draws,
        prediction_draws=defense.prediction_draws(),
        seed=derive_seed(runner.seed, "diagnostics", runner.dataset, defense.name),
    )
    record = {"defense": defense.name, "config": config, "config_hash": digest, **found}
    record["weights_sha256"] = config["weights_sha256"]
    record["wall_time_s"] = round(time.perf_counter() - start, 3)
    write_json(path, seal(record))
    for code, detail in found["flags"].items():
        log.warning("%s: %s (%s)", defense.name, code, detail)
    return record


class Evaluated:
    """A defense's trained model and its clean predictions on the run's samples, made on first
    use and shared by its certificates and attack cells (a model load can be hundreds of MB)."""

    def __init__(self, runner: Runner, defense: Defense, x: torch.Tensor) -> None:
        self.runner, self.defense, self.x = runner, defense, x
        self._value: tuple[nn.Module, torch.Tensor] | None = None

    def get(self) -> tuple[nn.Module, torch.Tensor]:
        if self._value is None:
            runner, defense = self.runner, self.defense
            model = runner.model(defense)
            torch.manual_seed(derive_seed(runner.seed, "clean", runner.dataset, defense.name))
            self._value = (model, predict(model, self.x, defense.prediction_draws()))
        return self._value
