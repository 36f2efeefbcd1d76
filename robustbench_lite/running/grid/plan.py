"""What a run computes, as a frozen value: its data, profile, samples, seed, eps and budget
overrides. Every name, key, config and spec of its models and cells derives from it (and from the
plugins), so a job is built from a plan and plain values, never from a runner."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from robustbench_lite.protocol import interval_bounds
from robustbench_lite.protocol.bpda import NO_BPDA, PLAIN
from robustbench_lite.protocol.contracts import Attack, DataSource, Defense, Knowledge, Plugin
from robustbench_lite.protocol.registry import instantiate
from robustbench_lite.protocol.spec import CellSpec, Profile, cap, derive_seed
from robustbench_lite.running.own.data import data_key
from robustbench_lite.store import certificates, diagnostics
from robustbench_lite.store.files import config_hash
from robustbench_lite.store.layout import NO_EOT
from robustbench_lite.store.records import RESULT_SCHEMA


def _marker(value: Any) -> str:
    """A hyper-parameter value as it appears in a cell name (and so a file name)."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:32]


@dataclass(frozen=True)
class RunPlan:
    """A run's settings that shape its numbers (not where or how fast it runs)."""

    source: DataSource  # the data: its shape, classes and default budgets
    profile: Profile
    n: int | None = None  # --n: test samples, overriding the profile's and the plugins' caps
    seed: int = 0
    eps: float | None = None  # one eps for every selected attack (None: each threat model's)
    budget: int | None = None  # per-sample queries of score- and label-based attacks
    eot: bool = True  # False (--no-eot) only to show what EOT changes; such cells are marked
    batch_size: int = 250
    only_plain: bool | None = None  # `rb check` of one cell: only its plain (True) or BPDA twin

    @property
    def dataset(self) -> str:
        """The data's name (what results are filed under)."""
        return self.source.name

    # -- samples -------------------------------------------------------------------------------

    def test_samples(self, available: int) -> int:
        """How many of the test split's first samples the run evaluates."""
        if self.profile.n is None and self.n is None:
            return available
        return min(self.n or self.profile.n or available, available)

    def samples(self, n: int, *plugins: Plugin) -> int:
        """How many of the first n test samples the plugins are evaluated on: the smallest of
        their profile's caps, unless `--n` was given explicitly."""
        limit = cap(self.profile.name, *plugins)
        return n if limit is None or self.n is not None else min(n, limit)

    # -- per attack ----------------------------------------------------------------------------

    def eps_of(self, attack: Attack) -> float:
        if self.eps is not None:
            return self.eps
        return self.source.default_eps(attack.threat_model)

    def budget_of(self, attack: Attack) -> int | None:
        """The per-sample query budget (None for gradient attacks: they are not limited)."""
        if attack.knowledge == Knowledge.GRADIENT:
            return None
        return self.budget or self.profile.budget

    def overrides(self, attack: Attack) -> list[tuple[str, Any]]:
        """(key, value) of the budget and hyper-parameters that differ from the profile's."""
        out: list[tuple[str, Any]] = []
        budget = self.budget_of(attack)
        if budget is not None and budget != self.profile.budget:
            out.append(("budget", budget))
        profile = instantiate(type(attack), self.profile.name).config()
        known = type(attack).hyperparameters()
        for key, value in sorted(attack.config().items()):
            if key in known and key != "budget" and profile.get(key) != value:
                out.append((key, value))
        return out

    def cell_name(self, attack: Attack, defense: Defense | None = None, plain: bool = False) -> str:
        """The leaderboard column of an attack: its name, plus the eps when not the default, plus
        `@budget=N` and `@<key>=<value>` for a budget or hyper-parameter other than the profile's
        (so an override never passes for the plain number), plus `@no-eot` when a randomized
        defense was attacked without EOT, plus `@no-bpda` for a white-box cell on a declared
        front step's own gradient."""
        eps = self.eps_of(attack)
        default = self.source.default_eps(attack.threat_model)
        name = attack.name if math.isclose(eps, default) else f"{attack.name}@eps={eps:g}"
        name += "".join(f"@{key}={_marker(value)}" for key, value in self.overrides(attack))
        if defense is not None and defense.randomized and not self.eot:
            name += NO_EOT
        if plain and defense is not None and self.bpda_of(defense, attack):
            name += NO_BPDA
        return name

    @staticmethod
    def bpda_of(defense: Defense, attack: Attack) -> str | None:
        """The front step a white-box attack on `defense` differentiates through BPDA, or None
        (no step declared, or an attack that takes no gradient of the model)."""
        if attack.knowledge != Knowledge.GRADIENT:
            return None
        return defense.front_step()

    # -- per defense ---------------------------------------------------------------------------

    def model_key(self, defense: Defense) -> tuple[str, dict[str, Any]]:
        """The hash that keys a defense's trained model (and its config)."""
        config: dict[str, Any] = {
            "dataset": self.dataset,
            "defense": defense.name,
            "config": defense.config(),
            "seed": self.seed,
        }
        if defense.revision:  # a fix to how a defense trains: new weights, not reused ones
            config["revision"] = defense.revision
        if self._users_data_sha256 is not None:  # a user's data: its content, not its name
            config["data_sha256"] = self._users_data_sha256
        return config_hash(config), config

    @functools.cached_property
    def _users_data_sha256(self) -> str | None:
        """For a user's data (not a registered dataset), the SHA-256 of what a model is trained
        and evaluated on (both splits); None for a registered dataset, pinned by its name."""
        if data_key(self.source).pinned:
            return None
        parts = [self.source.content_sha256()]
        if "train" in self.source.splits:
            parts.append(self.source.load("train").sha256())
        return hashlib.sha256("/".join(parts).encode()).hexdigest()

    def eot_draws(self, defense: Defense) -> int:
        """Forward passes averaged per attack query: the profile's EOT count if randomized."""
        return self.profile.eot_draws if defense.randomized and self.eot else 1

    # -- per cell ------------------------------------------------------------------------------

    def unit_of(self, defense: Defense, attack: Attack) -> int:
        """The samples in one unit of a cell's work: the run's batch size, or less where the
        attack or defense declares it (`unit_samples`). Units are seeded by their index, so a
        cell's numbers depend on this size, never on how many workers run its units."""
        units = (defense.unit_samples, attack.unit_samples)
        declared = [u[self.profile.name] for u in units if self.profile.name in u]
        return min([self.batch_size, *declared])

    def cell_config(
        self, defense: Defense, attack: Attack, n: int, plain: bool = False
    ) -> dict[str, Any]:
        """What a cell's result is keyed by: a rerun with the same config hash is skipped."""
        config = {
            "schema": RESULT_SCHEMA,
            "dataset": self.dataset,
            "n": n,
            "seed": self.seed,
            "model_key": self.model_key(defense)[0],
            "defense": defense.keyed(),
            "attack": attack.keyed(),
            "threat_model": attack.threat_model,
            "eps": self.eps_of(attack),
            "budget": self.budget_of(attack),
            "prediction_draws": defense.prediction_draws(),
        }
        if defense.randomized:  # keyed only here, so deterministic cells keep their hashes
            config["eot_draws"] = self.eot_draws(defense)
        unit = self.unit_of(defense, attack)
        if unit < self.batch_size:  # keyed only here, so cells of whole batches keep their hashes
            config["unit_samples"] = unit
        step = self.bpda_of(defense, attack)
        if step is not None:  # keyed only here, so models without a front step keep their hashes
            config["bpda"] = PLAIN if plain else step
        surrogate = attack.surrogate_defense()
        if surrogate is not None:  # a transfer attack's cells depend on the surrogate's weights
            config["surrogate"] = {"defense": surrogate, "weights": attack.surrogate_weights()}
        members = attack.member_configs()
        if members:  # a chain's cells depend on every member's settings, defaults included
            config["members"] = members
        return config

    def cell_spec(self, defense: Defense, attack: Attack, plain: bool = False) -> CellSpec:
        """The resolved spec of one cell, made once and passed down to its evaluation."""
        name = self.cell_name(attack, defense, plain)
        return CellSpec(
            defense=defense.name,
            cell=name,
            threat_model=self.source.threat_model(attack.threat_model),
            eps=self.eps_of(attack),
            budget=self.budget_of(attack),
            eot_draws=self.eot_draws(defense),
            prediction_draws=defense.prediction_draws(),
            randomized=defense.randomized,
            seed=derive_seed(self.seed, "attack", self.dataset, defense.name, name),
            batch_size=self.unit_of(defense, attack),
            num_classes=self.source.num_classes,
            bpda=not plain and self.bpda_of(defense, attack) is not None,
        )

    def variants(self, defense: Defense, attack: Attack) -> list[bool]:
        """The `plain` values of an attack's cells on `defense`: [False], plus True (a plain
        `@no-bpda` cell) for a white-box attack on a declared front step."""
        both = [False, True] if self.bpda_of(defense, attack) is not None else [False]
        return [p for p in both if self.only_plain in (None, p)] or both

    def certificate_config(self, defense: Defense, n: int, eps: float) -> dict[str, Any]:
        """What a certificate file is keyed by: the defense's model and samples, the eps, the
        column a verified certificate takes (a claimed one is filed under CLAIMED instead), and
        the verifier the runner recomputes it with (a new one recomputes every certificate)."""
        default = self.source.default_eps(certificates.THREAT_MODEL)
        return {
            "schema": RESULT_SCHEMA,
            "dataset": self.dataset,
            "n": n,
            "seed": self.seed,
            "model_key": self.model_key(defense)[0],
            "defense": defense.keyed(),
            "threat_model": certificates.THREAT_MODEL,
            "eps": eps,
            "column": certificates.COLUMN + certificates.suffix(eps, default),
            "verifier": interval_bounds.VERIFIER,
        }

    def diagnostics_config(self, defense: Defense) -> dict[str, Any]:
        """What a model's diagnostics record is keyed by."""
        return diagnostics.config(
            self.model_key(defense)[0], self.dataset, self.seed, self.eot_draws(defense)
        )
