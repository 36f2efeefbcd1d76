"""The runner: crosses attacks x defenses, trains or loads each model once, verifies every
adversarial example itself, counts every query itself, and writes one JSON file per cell."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from robustbench_lite import __version__, certified, data, leaderboard
from robustbench_lite.cache import ModelCache, config_hash, seal, write_json
from robustbench_lite.eot import EOT
from robustbench_lite.errors import RBError
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
from robustbench_lite.queries import QueryCounter

log = logging.getLogger(__name__)

RESULT_SCHEMA = 1


@dataclass(frozen=True)
class Profile:
    """How much work a run does: test samples, the per-sample query budget, and the EOT draws
    (forward passes averaged per query of a randomized defense)."""

    name: str
    n: int | None  # test samples; None: the whole test split
    budget: int  # per-sample queries of score- and label-based attacks
    eot_draws: int = 10


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", n=200, budget=1_000, eot_draws=4),
    "standard": Profile("standard", n=1_000, budget=10_000, eot_draws=10),
    "paper": Profile("paper", n=None, budget=10_000, eot_draws=30),
}


def profile_named(name: str) -> Profile:
    if name not in PROFILES:
        raise RBError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def resolve_names(requested: Iterable[str], known: Sequence[str], kind: str) -> list[str]:
    """Expand comma lists and `all`, keep order, drop repeats; unknown names are an RBError.

    `all` means every plugin whose class is `in_all` (a generic plugin whose concrete variants
    are registered too, like `low-frequency`, is left to them)."""
    load = attack_class if kind == "attack" else defense_class
    names: list[str] = []
    for item in requested:
        for name in (part.strip() for part in item.split(",")):
            if not name:
                continue
            expanded = [n for n in known if load(n).in_all] if name == "all" else [name]
            for one in expanded:
                if one not in known:
                    raise RBError(f"unknown {kind} {one!r}; known: {', '.join(known)}")
                if one not in names:
                    names.append(one)
    if not names:
        raise RBError(f"no {kind} given; known: {', '.join(known)}")
    return names


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the run seed and names: stable across runs, never from the clock."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def versions() -> dict[str, str]:
    """Versions that shape the numbers; stored in every result."""
    return {
        "robustbench_lite": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "foolbox": importlib.metadata.version("foolbox"),
        "python": platform.python_version(),
    }


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
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def incompatibility(attack: Attack, defense: Defense) -> str | None:
    """Why this pair cannot be run (decided up front from what the plugins declare), or None."""
    if attack.knowledge not in defense.exposes:
        return f"{attack.name} needs {attack.knowledge} access, {defense.name} exposes only " + (
            ", ".join(sorted(defense.exposes)) or "nothing"
        )
    return None


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

    def run(self, attacks: Iterable[str], defenses: Iterable[str]) -> pd.DataFrame:
        """Evaluate every (defense, attack) cell, then build the leaderboard of this results dir."""
        attack_list = resolve_names(attacks, attack_names(), "attack")
        defense_list = resolve_names(defenses, defense_names(), "defense")
        self._check_settings(attack_list + defense_list)
        built_attacks = [self._attack(name) for name in attack_list]
        built_defenses = [self._defense(name) for name in defense_list]
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
            for attack in runnable:
                na = self.samples(n, defense, attack)
                self._run_cell(defense, model, attack, x[:na], y[:na], clean_pred[:na])
        board = leaderboard.build(self.cell_dir)
        leaderboard.save(board, self.cell_dir)
        return board

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
        if not self.cache.load(model, defense.name, key):
            train = data.load(self.dataset, "train")
            log.info("training %s on %s (%d samples)", defense.name, self.dataset, len(train))
            generator = torch.Generator().manual_seed(
                derive_seed(self.seed, "train", self.dataset, defense.name)
            )
            start = time.perf_counter()
            defense.fit(model, train.x, train.y, generator=generator, progress=not self.quiet)
            log.info("trained %s in %.1f s", defense.name, time.perf_counter() - start)
            self.cache.save(model, defense.name, key, config)
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
            log.info("%s x %s: cached in %s", defense.name, attack.name, path)
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
        n = len(y)
        config = self.cell_config(defense, attack, n)
        eps, budget = config["eps"], config["budget"]
        tm = threat_model(attack.threat_model)
        draws = defense.prediction_draws()
        m = self.eot_draws(defense)
        view = EOT(model, m) if m > 1 else model  # what the attack queries
        cell = self.cell_name(attack, defense)
        cell_seed = derive_seed(self.seed, "attack", self.dataset, defense.name, cell)
        torch.manual_seed(cell_seed)
        generator = torch.Generator().manual_seed(cell_seed)
        correct = clean_pred == y
        robust = correct.clone()
        adv_pred = clean_pred.clone()
        queries = torch.zeros(n, dtype=torch.int64)
        distance = torch.full((n,), float("nan"))
        extras: dict[str, list[Any]] = {}
        x_verified = x.clone()
        targets = torch.nonzero(correct).squeeze(1)
        batches = [
            targets[i : i + self.batch_size] for i in range(0, len(targets), self.batch_size)
        ]
        # Under EOT every row an attack sends costs m queries: it may send budget // m rows.
        rows = None if budget is None else budget // m
        if rows is not None and rows < 1:
            raise RBError(
                f"a query budget of {budget} affords no query of {defense.name} under EOT with "
                f"{m} draws; raise --budget"
            )
        desc = f"{defense.name} x {attack.name}"
        for batch in tqdm(batches, desc=desc, disable=self.quiet, leave=False):
            xb, yb = x[batch], y[batch]
            counter = QueryCounter(
                view, len(batch), num_classes=10, draws=m, stochastic=defense.randomized
            )
            output = attack.run(counter, xb, yb, eps=eps, budget=rows, generator=generator)
            x_adv, batch_extras = output if isinstance(output, tuple) else (output, {})
            x_adv = self._checked(attack, x_adv, xb)
            if budget is not None and int(counter.counts.max()) > budget:
                raise RBError(
                    f"attack {attack.name} spent {int(counter.counts.max())} queries on one sample, "
                    f"over its budget of {budget}: the runner refuses to grade it"
                )
            # The runner's own verdict: project into the threat model, predict uncounted.
            batch_extras = tm.clip_extras(batch_extras, eps)
            x_proj = tm.project(xb, x_adv, eps, batch_extras)
            pred = predict(model, x_proj, draws)
            fooled = pred != yb
            found = fooled
            x_found = x_proj
            if attack.minimal:  # the distance of what it found, even beyond eps
                x_found = x_adv.clamp(0.0, 1.0)
                found = predict(model, x_found, draws) != yb
            distance[batch] = torch.where(
                found, tm.distance(xb, x_found, batch_extras), float("inf")
            )
            robust[batch] = ~fooled
            x_verified[batch] = x_proj
            adv_pred[batch] = pred
            queries[batch] = counter.counts
            for key, value in batch_extras.items():
                if len(value) != len(batch):
                    raise RBError(f"attack {attack.name}: extra {key!r} is not one row per sample")
                extras.setdefault(key, [None] * n)
                for i, v in zip(batch.tolist(), value.tolist(), strict=True):
                    extras[key][i] = v
        record = self._record(
            config, attack, cell, correct, robust, adv_pred, queries, distance, extras
        )
        record.update(
            {
                "no_eot": defense.randomized and not self.eot,
                "eot_draws": m,
                "versions": versions(),
                "wall_time_s": round(time.perf_counter() - start, 3),
                "profile": self.profile,
                "max_eval_samples": _cap(self.profile, defense, attack),
            }
        )
        path = self.cell_path(defense, attack)
        if self.save_adv:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"x_adv": x_verified.contiguous()}, str(adv_path(path)))
        write_json(path, seal(record))
        log.info(
            "%s x %s: clean %.3f, robust %.3f (%s)",
            defense.name,
            cell,
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
            flags = defense.certify(model, x, y, eps).to(torch.bool)
            record = certified.record(config, digest, correct, flags)
            record.update(
                {"versions": versions(), "wall_time_s": round(time.perf_counter() - start, 3)}
            )
            write_json(path, seal(record))
            log.info("%s: certified %.3f (%s)", defense.name, record["certified_acc"], path)

    @staticmethod
    def _checked(attack: Attack, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
            shape = getattr(x_adv, "shape", type(x_adv).__name__)
            raise RBError(f"attack {attack.name} returned {shape}, expected {tuple(x.shape)}")
        x_adv = x_adv.detach().to(x.dtype)
        if not bool(torch.isfinite(x_adv).all()):
            raise RBError(f"attack {attack.name} returned non-finite values")
        return x_adv

    def _record(
        self,
        config: dict[str, Any],
        attack: Attack,
        cell: str,
        correct: torch.Tensor,
        robust: torch.Tensor,
        adv_pred: torch.Tensor,
        queries: torch.Tensor,
        distance: torch.Tensor,
        extras: dict[str, list[Any]],
    ) -> dict[str, Any]:
        attacked = correct
        success = attacked & ~robust
        q_att = queries[attacked].double()
        q_succ = queries[success].double()
        d_att = distance[attacked]
        return {
            **{
                k: config[k] for k in ("schema", "dataset", "seed", "threat_model", "eps", "budget")
            },
            "defense": config["defense"]["name"],
            "attack": config["attack"]["name"],
            "cell": cell,
            "knowledge": attack.knowledge,
            "minimal": attack.minimal,
            "config_hash": config_hash(config),
            "config": config,
            "n": len(correct),
            "clean_acc": float(correct.double().mean()),
            "robust_acc": float(robust.double().mean()),
            "attacked": int(attacked.sum()),
            "success_rate": float(success.sum()) / max(1, int(attacked.sum())),
            "queries": {
                "total": int(q_att.sum()),
                "mean": _stat(q_att, "mean"),
                "median": _stat(q_att, "median"),
                "max": _stat(q_att, "max"),
                "mean_success": _stat(q_succ, "mean"),
                "median_success": _stat(q_succ, "median"),
            },
            "median_distance": _stat(d_att, "median"),
            "samples": {
                "index": list(range(len(correct))),
                "clean_correct": correct.tolist(),
                "robust": robust.tolist(),
                "adv_pred": adv_pred.tolist(),
                "queries": queries.tolist(),
                "distance": [None if not math.isfinite(d) else d for d in distance.tolist()],
                "extras": extras,
            },
        }


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


def adv_path(cell_path: Path) -> Path:
    """The sibling file holding a cell's verified adversarial inputs (clean x where unattacked)."""
    return cell_path.with_suffix(".adv.safetensors")


def _cap(profile: str, *plugins: Plugin) -> int | None:
    """The smallest sample cap the plugins declare for the profile (None: no cap)."""
    caps = [c for p in plugins if (c := p.max_eval_samples.get(profile)) is not None]
    return min(caps) if caps else None


def _stat(values: torch.Tensor, how: str) -> float | None:
    """mean / median / max of a 1-D tensor as a JSON number (None when empty or infinite)."""
    if len(values) == 0:
        return None
    arr = values.double().numpy()
    value = {"mean": np.mean, "median": np.median, "max": np.max}[how](arr)
    return float(value) if math.isfinite(value) else None


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
