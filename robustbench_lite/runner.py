"""The runner: crosses attacks x defenses, trains or loads each model once, and hands each cell to
the protocol's evaluation (cell.py), which verifies every adversarial example and counts every
query itself; one JSON file per cell (store.py)."""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn

from robustbench_lite import cell, certified, data, diagnostics, invariants, leaderboard
from robustbench_lite.cache import ModelCache, config_hash, seal, write_json
from robustbench_lite.cell import predict
from robustbench_lite.errors import RBError
from robustbench_lite.plan import (
    PROFILES,
    CellSpec,
    Profile,
    derive_seed,
    incompatibility,
    profile_named,
    resolve_names,
)
from robustbench_lite.plugins import (
    Attack,
    Defense,
    Plugin,
    attack_class,
    attack_names,
    defense_class,
    defense_names,
    instantiate,
    threat_model,
)
from robustbench_lite.store import RESULT_SCHEMA, adv_path, cell_record, versions

__all__ = [
    "PROFILES",
    "Profile",
    "Runner",
    "adv_path",
    "derive_seed",
    "predict",
    "resolve_names",
    "run",
    "versions",
]

log = logging.getLogger(__name__)


def writable_dir(path: Path, what: str) -> Path:
    """`path` as a directory this process can write into (created if missing), else an RBError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RBError(f"{what} {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RBError(f"{what} {path} cannot be created ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RBError(f"{what} {path} is not writable")
    return path


@dataclass
class Runner:
    """One run's settings; `run` crosses the given attacks and defenses."""

    dataset: str = "mnist-5k"
    profile: str = "standard"
    n: int | None = None
    seed: int = 0
    results_dir: Path = Path("results")
    eps: float | None = None
    budget: int | None = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    quiet: bool = False
    batch_size: int = 250
    save_adv: bool = False  # also write the verified x_adv of each cell beside its JSON
    eot: bool = True  # False (--no-eot) only to show what EOT changes; such cells are marked
    cache: ModelCache = field(default_factory=ModelCache)
    #: After `run`: the cell files taken from earlier runs, and those computed now.
    reused: list[Path] = field(default_factory=list, init=False)
    computed: list[Path] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.results_dir = Path(self.results_dir)
        self._profile = profile_named(self.profile)
        if self.dataset not in data.DATASETS:
            raise RBError(f"unknown dataset {self.dataset!r}; known: {', '.join(data.DATASETS)}")
        if self.n is not None and self.n < 1:
            raise RBError(f"--n must be a positive number of samples, got {self.n}")
        if self.budget is not None and self.budget < 1:
            raise RBError(f"the query budget must be at least 1, got {self.budget}")
        if self.batch_size < 1:
            raise RBError(f"batch size must be at least 1, got {self.batch_size}")

    @property
    def cell_dir(self) -> Path:
        return self.results_dir / self.dataset / self.profile

    def run(self, attacks: Iterable[str], defenses: Iterable[str | Defense]) -> pd.DataFrame:
        """Evaluate every (defense, attack) cell, then build the leaderboard of this results dir.

        A defense is a registered name or a Defense instance (a user's model, own_model.py)."""
        built_attacks, built_defenses = self.prepare(attacks, defenses)
        test = data.load(self.dataset, "test")
        n = (
            len(test)
            if self._profile.n is None and self.n is None
            else min(self.n or self._profile.n or len(test), len(test))
        )
        for defense in built_defenses:
            nd = self.samples(n, defense)
            x, y = test.x[:nd], test.y[:nd]
            evaluated = _Evaluated(self, defense, x)  # model and clean predictions, made once
            if defense.certifies:
                self._certify(defense, x, y, built_attacks, evaluated)
            pending = [
                a
                for a in built_attacks
                if not self._is_done(defense, a, self.samples(n, defense, a))
            ]
            runnable = []
            for attack in pending:
                reason = incompatibility(attack, defense)
                if reason:
                    log.warning("skipping %s x %s: %s", defense.name, attack.name, reason)
                else:
                    runnable.append(attack)
            if not runnable:
                continue
            model, clean_pred = evaluated.get()
            self._diagnose(defense, model, x, y, clean_pred)
            for attack in runnable:
                na = self.samples(n, defense, attack)
                self._run_cell(defense, model, attack, x[:na], y[:na], clean_pred[:na])
        board = leaderboard.build(self.cell_dir)
        leaderboard.save(board, self.cell_dir)
        broken = invariants.violations(self.cell_dir)
        if broken:
            raise RBError("soundness invariant broken: " + "; ".join(broken))
        return board

    def prepare(
        self, attacks: Iterable[str], defenses: Iterable[str | Defense]
    ) -> tuple[list[Attack], list[Defense]]:
        """Every check that needs no work (names, settings, eps, writable folders), so bad input
        fails before anything is trained or attacked; returns the built plugins."""
        attack_list = resolve_names(attacks, attack_names(), "attack")
        defenses = list(defenses)
        given = [d for d in defenses if isinstance(d, Defense)]
        names = [d for d in defenses if not isinstance(d, Defense)]
        defense_list = (
            resolve_names(names, defense_names(), "defense") if names or not given else []
        )
        for d in given:  # its cells go to results/.../<name>/: no registered defense's folder
            if d.name in defense_names() or [g.name for g in given].count(d.name) > 1:
                raise RBError(f"the name {d.name!r} is taken by another defense; choose another")
        self._check_settings(attack_list + defense_list)
        built = [self._attack(name) for name in attack_list]
        built_defenses = [self._defense(name) for name in defense_list] + given
        writable_dir(self.results_dir, "results folder")
        writable_dir(self.cache.root.parent, "RB_HOME")
        return built, built_defenses

    def samples(self, n: int, *plugins: Plugin) -> int:
        """How many of the first n test samples the plugins are evaluated on: the smallest of
        their profile's caps, unless `--n` was given explicitly."""
        cap = _cap(self.profile, *plugins)
        return n if cap is None or self.n is not None else min(n, cap)

    # -- plugins -------------------------------------------------------------------------------

    def _check_settings(self, names: list[str]) -> None:
        unknown = sorted(set(self.settings) - set(names))
        if unknown:
            raise RBError(
                f"--set names {', '.join(unknown)}, which is not among the selected plugins "
                f"({', '.join(names)})"
            )

    def _attack(self, name: str) -> Attack:
        attack = instantiate(attack_class(name), self.profile, self.settings.get(name))
        threat_model(attack.threat_model).check_eps(self._eps(attack))
        return attack

    def _defense(self, name: str) -> Defense:
        return instantiate(defense_class(name), self.profile, self.settings.get(name))

    def _eps(self, attack: Attack) -> float:
        if self.eps is not None:
            return self.eps
        return threat_model(attack.threat_model).default_eps[self.dataset]

    def _budget(self, attack: Attack) -> int | None:
        if attack.knowledge == "gradient":
            return None
        return self.budget or self._profile.budget

    # -- models --------------------------------------------------------------------------------

    def model_key(self, defense: Defense) -> tuple[str, dict[str, Any]]:
        config = {
            "dataset": self.dataset,
            "defense": defense.name,
            "config": defense.config(),
            "seed": self.seed,
        }
        return config_hash(config), config

    def model(self, defense: Defense) -> nn.Module:
        """The trained model of `defense`: from the cache, or trained now and cached."""
        key, config = self.model_key(defense)
        torch.manual_seed(derive_seed(self.seed, "init", self.dataset, defense.name))
        model = defense.build(10)
        if defense.pretrained:  # a user's trained model: its weights came with build()
            log.info("%s: a pretrained model (key %s), not trained here", defense.name, key[:12])
        elif not self.cache.load(model, defense.name, key):
            train = data.load(self.dataset, "train")
            log.info("training %s on %s (%d samples)", defense.name, self.dataset, len(train))
            generator = torch.Generator().manual_seed(
                derive_seed(self.seed, "train", self.dataset, defense.name)
            )
            start = time.perf_counter()
            defense.fit(model, train.x, train.y, generator=generator, progress=not self.quiet)
            seconds = time.perf_counter() - start
            log.info("trained %s in %.1f s", defense.name, seconds)
            self.cache.save(model, defense.name, key, {**config, "train_time_s": round(seconds, 3)})
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    # -- cells ---------------------------------------------------------------------------------

    def eot_draws(self, defense: Defense) -> int:
        """Forward passes averaged per attack query: the profile's EOT count if randomized."""
        return self._profile.eot_draws if defense.randomized and self.eot else 1

    def cell_name(self, attack: Attack, defense: Defense | None = None) -> str:
        """The leaderboard column of an attack: its name, plus the eps when not the default,
        plus `@no-eot` when a randomized defense was attacked without EOT."""
        tm = threat_model(attack.threat_model)
        eps = self._eps(attack)
        default = tm.default_eps[self.dataset]
        name = attack.name if math.isclose(eps, default) else f"{attack.name}@eps={eps:g}"
        if defense is not None and defense.randomized and not self.eot:
            name += leaderboard.NO_EOT
        return name

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
            "eps": self._eps(attack),
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
            eps=self._eps(attack),
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
        try:
            stored = leaderboard.read_cell(path)
        except RBError as exc:
            log.warning("%s: recomputing it", exc)
            return False
        done = stored.get("config_hash") == config_hash(self.cell_config(defense, attack, n))
        if done:
            log.info("%s x %s: reused %s", defense.name, attack.name, path)
            self.reused.append(path)
        return done

    def _run_cell(
        self,
        defense: Defense,
        model: nn.Module,
        attack: Attack,
        x: torch.Tensor,
        y: torch.Tensor,
        clean_pred: torch.Tensor,
    ) -> None:
        start = time.perf_counter()
        config = self.cell_config(defense, attack, len(y))
        spec = self.cell_spec(defense, attack)
        arrays = cell.evaluate(spec, attack, model, x, y, clean_pred, progress=not self.quiet)
        record = cell_record(
            config,
            cell=spec.cell,
            knowledge=attack.knowledge,
            minimal=attack.minimal,
            arrays=arrays,
        )
        record.update(
            {
                "no_eot": defense.randomized and not self.eot,
                "eot_draws": spec.eot_draws,
                "versions": versions(),
                "wall_time_s": round(time.perf_counter() - start, 3),
                "profile": self.profile,
                "max_eval_samples": _cap(self.profile, defense, attack),
            }
        )
        path = self.cell_path(defense, attack)
        if self.save_adv:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"x_adv": arrays.x_verified.contiguous()}, str(adv_path(path)))
        write_json(path, seal(record))
        self.computed.append(path)
        log.info(
            "%s x %s: clean %.3f, robust %.3f (%s)",
            defense.name,
            spec.cell,
            record["clean_acc"],
            record["robust_acc"],
            path,
        )

    def _certify(
        self,
        defense: Defense,
        x: torch.Tensor,
        y: torch.Tensor,
        attacks: list[Attack],
        evaluated: _Evaluated,
    ) -> None:
        """Certificates of a certifying defense on the attacks' samples (see certified.py)."""
        default = threat_model(certified.THREAT_MODEL).default_eps[self.dataset]
        linf = [self._eps(a) for a in attacks if a.threat_model == certified.THREAT_MODEL]
        for eps in certified.eps_values(default, linf):
            suffix = certified.suffix(eps, default)
            config = {
                "schema": RESULT_SCHEMA,
                "dataset": self.dataset,
                "n": len(y),
                "seed": self.seed,
                "model_key": self.model_key(defense)[0],
                "defense": {"name": defense.name, "config": defense.config()},
                "threat_model": certified.THREAT_MODEL,
                "eps": eps,
                "column": certified.COLUMN + suffix,
            }
            digest = config_hash(config)
            path = self.cell_dir / defense.name / f"{certified.STEM}{suffix}.json"
            if certified.is_current(path, digest):
                continue
            start = time.perf_counter()
            model, clean_pred = evaluated.get()
            correct = clean_pred == y
            # The defense certifies on a copy: nothing it does can touch the grading model.
            flags = defense.certify(copy.deepcopy(model), x, y, eps).to(torch.bool)
            record = certified.record(config, digest, correct, flags)
            record.update(
                {"versions": versions(), "wall_time_s": round(time.perf_counter() - start, 3)}
            )
            write_json(path, seal(record))
            log.info("%s: certified %.3f (%s)", defense.name, record["certified_acc"], path)


    def _diagnose(
        self,
        defense: Defense,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        clean_pred: torch.Tensor,
    ) -> None:
        """The model's diagnostics (diagnostics.py), once per model, beside its cells."""
        config = diagnostics.config(
            self.model_key(defense)[0], self.dataset, self.seed, self.eot_draws(defense)
        )
        digest = config_hash(config)
        path = diagnostics.path(self.cell_dir, defense.name)
        if diagnostics.is_current(path, digest):
            return
        keep = clean_pred == y
        start = time.perf_counter()
        found = diagnostics.run_checks(
            copy.deepcopy(model),
            x[keep],
            y[keep],
            randomized=defense.randomized,
            eot_draws=self.eot_draws(defense),
            prediction_draws=defense.prediction_draws(),
            seed=derive_seed(self.seed, "diagnostics", self.dataset, defense.name),
        )
        record = {"defense": defense.name, "config": config, "config_hash": digest, **found}
        record["wall_time_s"] = round(time.perf_counter() - start, 3)
        write_json(path, seal(record))
        for code, detail in found["flags"].items():
            log.warning("%s: %s (%s)", defense.name, code, detail)


class _Evaluated:
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


def _cap(profile: str, *plugins: Plugin) -> int | None:
    """The smallest sample cap the plugins declare for the profile (None: no cap)."""
    caps = [c for p in plugins if (c := p.max_eval_samples.get(profile)) is not None]
    return min(caps) if caps else None


def run(
    attacks: Sequence[str],
    defenses: Sequence[str],
    *,
    dataset: str = "mnist-5k",
    profile: str = "standard",
    n: int | None = None,
    seed: int = 0,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    results_dir: str | Path = "results",
    eps: float | None = None,
    budget: int | None = None,
    quiet: bool = True,
    save_adv: bool = False,
    eot: bool = True,
) -> pd.DataFrame:
    """Python API: run attacks x defenses, write the result files, return the leaderboard."""
    runner = Runner(
        dataset=dataset,
        profile=profile,
        n=n,
        seed=seed,
        results_dir=Path(results_dir),
        eps=eps,
        budget=budget,
        settings=settings or {},
        quiet=quiet,
        save_adv=save_adv,
        eot=eot,
    )
    return runner.run(attacks, defenses)
