"""How a run names and keys its work: eps and budgets per attack, model keys, cell names, paths,
configs and resolved specs. A mixin of the Runner, whose settings it reads."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from robustbench_lite import leaderboard
from robustbench_lite.cache import ModelCache, config_hash
from robustbench_lite.errors import RBError
from robustbench_lite.plan import CellSpec, Profile, derive_seed
from robustbench_lite.plugins import Attack, Defense, instantiate, threat_model
from robustbench_lite.store import RESULT_SCHEMA

log = logging.getLogger(__name__)


def _marker(value: Any) -> str:
    """A hyper-parameter value as it appears in a cell name (and so a file name)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:32]


class CellNaming:
    """Names, keys and specs of a run's models and cells, from the run's settings."""

    dataset: str
    seed: int
    eps: float | None
    budget: int | None
    eot: bool
    batch_size: int
    _profile: Profile
    reused: list[Path]
    cache: ModelCache

    @property
    def cell_dir(self) -> Path:
        raise NotImplementedError

    def eps_of(self, attack: Attack) -> float:
        if self.eps is not None:
            return self.eps
        return threat_model(attack.threat_model).default_eps[self.dataset]

    def _budget(self, attack: Attack) -> int | None:
        if attack.knowledge == "gradient":
            return None
        return self.budget or self._profile.budget

    def model_key(self, defense: Defense) -> tuple[str, dict[str, Any]]:
        config = {
            "dataset": self.dataset,
            "defense": defense.name,
            "config": defense.config(),
            "seed": self.seed,
        }
        return config_hash(config), config

    def weights_id(self, defense: Defense) -> str | None:
        """The SHA-256 of the weights this run evaluates `defense` with: a pretrained model's
        from its config, a trained one's from the model cache (None while not trained)."""
        if defense.pretrained:
            value = defense.config().get("weights_sha256")
            return value if isinstance(value, str) else None
        return self.cache.weights_sha256(defense.name, self.model_key(defense)[0])

    def eot_draws(self, defense: Defense) -> int:
        """Forward passes averaged per attack query: the profile's EOT count if randomized."""
        return self._profile.eot_draws if defense.randomized and self.eot else 1

    def cell_name(self, attack: Attack, defense: Defense | None = None) -> str:
        """The leaderboard column of an attack: its name, plus the eps when not the default, plus
        `@budget=N` and `@<key>=<value>` for a budget or hyper-parameter other than the profile's
        (so an override never passes for the plain number), plus `@no-eot` when a randomized
        defense was attacked without EOT."""
        tm = threat_model(attack.threat_model)
        eps = self.eps_of(attack)
        default = tm.default_eps[self.dataset]
        name = attack.name if math.isclose(eps, default) else f"{attack.name}@eps={eps:g}"
        name += "".join(f"@{key}={_marker(value)}" for key, value in self.overrides(attack))
        if defense is not None and defense.randomized and not self.eot:
            name += leaderboard.NO_EOT
        return name

    def overrides(self, attack: Attack) -> list[tuple[str, Any]]:
        """(key, value) of the budget and hyper-parameters that differ from the profile's."""
        out: list[tuple[str, Any]] = []
        budget = self._budget(attack)
        if budget is not None and budget != self._profile.budget:
            out.append(("budget", budget))
        profile = instantiate(type(attack), self._profile.name).config()
        for key, value in sorted(attack.config().items()):
            if key != "budget" and profile.get(key) != value:
                out.append((key, value))
        return out

    def cell_path(self, defense: Defense, attack: Attack) -> Path:
        return self.cell_dir / defense.name / f"{self.cell_name(attack, defense)}.json"

    def cell_config(self, defense: Defense, attack: Attack, n: int) -> dict[str, Any]:
        config = {
            "schema": RESULT_SCHEMA,
            "dataset": self.dataset,
            "n": n,
            "seed": self.seed,
            "model_key": self.model_key(defense)[0],
            "defense": {"name": defense.name, "config": defense.config()},
            "attack": {"name": attack.name, "config": attack.config()},
            "threat_model": attack.threat_model,
            "eps": self.eps_of(attack),
            "budget": self._budget(attack),
            "prediction_draws": defense.prediction_draws(),
        }
        if defense.randomized:  # keyed only here, so deterministic cells keep their hashes
            config["eot_draws"] = self.eot_draws(defense)
        return config

    def cell_spec(self, defense: Defense, attack: Attack) -> CellSpec:
        """The resolved spec of one cell, made once and passed down to its evaluation."""
        name = self.cell_name(attack, defense)
        return CellSpec(
            defense=defense.name,
            cell=name,
            threat_model=threat_model(attack.threat_model),
            eps=self.eps_of(attack),
            budget=self._budget(attack),
            eot_draws=self.eot_draws(defense),
            prediction_draws=defense.prediction_draws(),
            randomized=defense.randomized,
            seed=derive_seed(self.seed, "attack", self.dataset, defense.name, name),
            batch_size=self.batch_size,
        )

    def _is_done(self, defense: Defense, attack: Attack, n: int) -> bool:
        path = self.cell_path(defense, attack)
        if not path.is_file():
            return False
        if not leaderboard.owned(path):
            raise RBError(
                f"{path} is not a result file rb wrote: move it away so the cell can be written"
            )
        try:
            stored = leaderboard.read_cell(path)
        except RBError as exc:
            log.warning("%s: recomputing it", exc)
            return False
        done = stored.get("config_hash") == config_hash(self.cell_config(defense, attack, n))
        weights = self.weights_id(defense)
        if done and weights is not None and stored.get("weights_sha256") != weights:
            log.info("%s: made on other weights of %s; recomputing it", path, defense.name)
            return False
        if done:
            log.info("%s x %s: reused %s", defense.name, attack.name, path)
            self.reused.append(path)
        return done
