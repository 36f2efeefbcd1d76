"""A run's trained models: from the zoo (the shipped weights behind the committed leaderboards,
pinned by their hashes), else from the model cache, else trained (each as a task an executor can
run anywhere) and cached, on the run's device; and which weights each defense is evaluated with.
`retrain` leaves the zoo aside: other weights of one config then make a row of their own."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import Attack, Defense
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.running.grid.executors import Task
from robustbench_lite.running.grid.plan import RunPlan
from robustbench_lite.running.grid.trained import build_model, model_recipe, train_model
from robustbench_lite.store.models import ModelCache
from robustbench_lite.store.zoo import Zoo, ZooEntry

log = logging.getLogger(__name__)


@dataclass
class Models:
    """The trained models of one run's plan."""

    plan: RunPlan
    cache: ModelCache
    device: torch.device
    quiet: bool = True
    threads: int | None = 1  # torch threads while training (None: torch's default)
    retrain: bool = False  # leave the zoo aside (the cache still serves what it trained)
    zoo: Zoo = field(default_factory=Zoo)

    def trained_as(self, defense: Defense) -> Defense:
        """The defense whose trained weights `defense` is evaluated with: itself, or the one it
        names in `weights_from` (at the run's profile)."""
        if defense.weights_from is None:
            return defense
        return instantiate(defense_class(defense.weights_from), self.plan.profile.name)

    def zoo_entry(self, defense: Defense) -> ZooEntry | None:
        """The zoo's model of this defense config, if there is one and the run takes it."""
        defense = self.trained_as(defense)
        if defense.pretrained or self.retrain:
            return None
        return self.zoo.get(self.plan.model_key(defense)[0])

    def zoo_id(self, defense: Defense) -> str:
        """Which zoo this run takes `defense`'s weights from: the SHA-256 of its manifest, or
        'none' (trained, cached or the user's own)."""
        return self.zoo.manifest_sha256() if self.zoo_entry(defense) is not None else "none"

    def weights_id(self, defense: Defense) -> str | None:
        """The SHA-256 of the weights this run evaluates `defense` with: a pretrained model's
        from its config, a trained one's from the model cache (None while not trained)."""
        if defense.pretrained:
            value = defense.config().get("weights_sha256")
            return value if isinstance(value, str) else None
        defense = self.trained_as(defense)
        entry = self.zoo_entry(defense)
        if entry is not None:
            return entry.sha256
        return self.cache.weights_sha256(defense.name, self.plan.model_key(defense)[0])

    def model(self, defense: Defense) -> nn.Module:
        """The trained model of `defense` on the run's device: from the cache, or trained now
        (as a unit of work of its own) and cached; a pretrained defense's as it came."""
        if defense.weights_from is not None:  # its own architecture, another's weights
            model = build_model(defense, self.plan.source, self.plan.seed)
            base = self.model(self.trained_as(defense)).cpu()
            defense.classifier_of(model).load_state_dict(base.state_dict())
            return self._frozen(model)
        key = self.plan.model_key(defense)[0]
        self.pin_threads()  # training differs in the last bits between thread counts
        model = build_model(defense, self.plan.source, self.plan.seed)
        if defense.pretrained:  # a user's trained model: its weights came with build()
            log.info("%s: a pretrained model (key %s), not trained here", defense.name, key[:12])
        elif (entry := self.zoo_entry(defense)) is not None:
            self.zoo.load(model, entry)
            log.info("%s: loaded from the zoo (%s)", defense.name, entry.file)
        elif not self.cache.load(model, defense.name, key):
            state, seconds = train_model(defense, self.plan.source, self.plan.seed, not self.quiet)
            self._store_trained(defense, model, state, seconds)
        return self._frozen(model)

    def hand_surrogates(self, attacks: list[Attack], settings: Mapping[str, Any]) -> None:
        """Hand each transfer attack its surrogate model (trained or loaded now, once)."""
        for attack, surrogate in self._surrogates(attacks, settings):
            trained = self.model(surrogate)
            recipe = model_recipe(surrogate, self.plan.source, self.plan.seed, trained, self.device)
            attack.use_surrogate(recipe, self.weights_id(surrogate))

    def name_surrogates(self, attacks: list[Attack], settings: Mapping[str, Any]) -> None:
        """A dry run's `hand_surrogates`: each transfer attack learns only its surrogate's
        weights (what its cells' configs are keyed on); no model is loaded or trained."""
        for attack, surrogate in self._surrogates(attacks, settings):
            attack.use_surrogate(None, self.weights_id(surrogate))

    def _surrogates(
        self, attacks: list[Attack], settings: Mapping[str, Any]
    ) -> list[tuple[Attack, Defense]]:
        """Each transfer attack with its surrogate defense, built with its settings."""
        named = [(a, a.surrogate_defense()) for a in attacks]
        return [
            (a, instantiate(defense_class(name), self.plan.profile.name, settings.get(name)))
            for a, name in named
            if name is not None
        ]

    def _frozen(self, model: nn.Module) -> nn.Module:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model.to(self.device)

    def pin_threads(self) -> None:
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _store_trained(
        self, defense: Defense, model: nn.Module, state: dict[str, Any], seconds: float
    ) -> None:
        key, config = self.plan.model_key(defense)
        model.load_state_dict(state)
        self.cache.save(model, defense.name, key, {**config, "train_time_s": round(seconds, 3)})

    def train_missing(self, defenses: list[Defense], pool: Any) -> None:
        """Train every defense this run needs and the cache lacks, each as one task."""
        missing = [
            d
            for d in {self.trained_as(d).name: self.trained_as(d) for d in defenses}.values()
            if not d.pretrained
            and self.zoo_entry(d) is None
            and not self.cache.has(d.name, self.plan.model_key(d)[0])
        ]
        if not missing:
            return
        tasks = [
            Task(d.name, train_model, (d, self.plan.source, self.plan.seed, not self.quiet))
            for d in missing
        ]
        by_name = {d.name: d for d in missing}

        def done(task: Task, result: tuple[dict[str, Any], float]) -> None:
            defense = by_name[task.key]
            model = build_model(defense, self.plan.source, self.plan.seed)
            self._store_trained(defense, model, *result)

        def failed(task: Task, exc: BaseException) -> None:
            raise RBError(f"training {task.key} failed: {exc}") from exc

        pool.map(tasks, done, failed)


def check_weights_from(defenses: list[Defense], settings: Mapping[str, Any]) -> None:
    """A defense on another's shipped weights (`weights_from`) takes them at the profile's
    settings: `--set` of that base beside it would run the two rows on different weights."""
    for d in defenses:
        if d.weights_from is not None and d.weights_from in settings:
            raise RBError(
                f"{d.name} runs on {d.weights_from}'s shipped weights: drop --set {d.weights_from}.*"
            )
