"""The runner: crosses attacks x defenses, trains or loads each model once, and hands each cell to
the protocol's evaluation (cell.py), which verifies every adversarial example and counts every
query itself; one JSON file per cell (store.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from robustbench_lite import data, devices, invariants, leaderboard
from robustbench_lite.cache import ModelCache, writable_dir
from robustbench_lite.cell import predict
from robustbench_lite.cellrun import CellJob
from robustbench_lite.cellrun import cap as cells_cap
from robustbench_lite.errors import RBError, stop_on_signals
from robustbench_lite.executors import EXECUTORS, Job, Task, executor, run_jobs
from robustbench_lite.naming import CellNaming
from robustbench_lite.plan import incompatibility, profile_named, resolve_names
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
from robustbench_lite.queries import STALE
from robustbench_lite.store import adv_path
from robustbench_lite.units import (
    DiagnosticsJob,
    Evaluated,
    build_model,
    certify_defense,
    train_model,
)

__all__ = [
    "Runner",
    "adv_path",
    "predict",
    "resolve_names",
    "run",
]

log = logging.getLogger(__name__)


@dataclass
class Runner(CellNaming):
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
    executor: str = "local"  # or "ray" (executors.py)
    address: str | None = None  # a Ray cluster's address; None: a local instance
    shard_size: int = 1  # batches per unit of work: a cell resumes and spreads shard by shard
    threads: int | None = 1  # torch threads in this process (None: torch's default)
    device: str | None = None  # auto, cpu, cuda, cuda:N; None: $RB_DEVICE or auto (devices.py)
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
        if self.shard_size < 1:
            raise RBError(f"--shard-size must be at least 1 batch, got {self.shard_size}")
        if self.threads is not None and self.threads < 1:
            raise RBError(f"--threads must be at least 1, got {self.threads}")
        if self.executor not in EXECUTORS:
            raise RBError(f"unknown executor {self.executor!r}; known: {', '.join(EXECUTORS)}")
        self._device = devices.resolve(self.device)
        self.failed: list[str] = []

    @property
    def cell_dir(self) -> Path:
        return self.results_dir / self.dataset / self.profile

    def run(self, attacks: Iterable[str], defenses: Iterable[str | Defense]) -> pd.DataFrame:
        """Evaluate every (defense, attack) cell, then build the leaderboard of this results dir.

        A defense is a registered name or a Defense instance (a user's model, own_model.py).
        Ctrl-C or SIGTERM stops it with every finished cell and shard kept."""
        with stop_on_signals():
            stale = STALE.count
            board = self._run(attacks, defenses)
            if STALE.count != stale:  # a plugin's thread kept querying after its cell
                raise RBError(f"{STALE.last}; rerun without that plugin")
            return board

    def _run(self, attacks: Iterable[str], defenses: Iterable[str | Defense]) -> pd.DataFrame:
        built_attacks, built_defenses = self.prepare(attacks, defenses)
        self._pin_threads()
        test = data.load(self.dataset, "test")
        n = (
            len(test)
            if self._profile.n is None and self.n is None
            else min(self.n or self._profile.n or len(test), len(test))
        )
        work = []
        for defense in built_defenses:
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
            if runnable or defense.certifies:
                work.append((defense, runnable))
        pool = executor(self.executor, self.address)
        self._train([d for d, _ in work], pool)
        total = sum(len(r) for _, r in work)
        with tqdm(total=total, desc="grid", unit="cell", disable=self.quiet or total < 2) as grid:
            for defense, runnable in work:
                self._evaluate_defense(defense, runnable, built_attacks, test, n, pool, grid)
        board = leaderboard.build(self.cell_dir)
        leaderboard.save(board, self.cell_dir)
        if self.failed:
            raise RBError(f"{len(self.failed)} cell(s) failed: " + "; ".join(self.failed))
        broken = invariants.violations(self.cell_dir)
        if broken:
            raise RBError("soundness invariant broken: " + "; ".join(broken))
        return board

    def _evaluate_defense(
        self,
        defense: Defense,
        runnable: list[Attack],
        attacks: list[Attack],
        test: data.Dataset,
        n: int,
        pool: Any,
        grid: Any,
    ) -> None:
        """One defense's certificates, diagnostics and cells, on its model loaded once."""
        nd = self.samples(n, defense)
        x, y = test.x[:nd].to(self._device), test.y[:nd].to(self._device)
        evaluated = Evaluated(self, defense, x)  # model and clean predictions, made once
        if defense.certifies:
            certify_defense(self, defense, x, y, attacks, evaluated)
        if not runnable:
            return
        recipe, clean_pred = evaluated.get()
        jobs: list[Job] = [DiagnosticsJob(self, defense, recipe, x, y, clean_pred)]
        for attack in runnable:
            na = self.samples(n, defense, attack)
            jobs.append(CellJob(self, defense, recipe, attack, x[:na], y[:na], clean_pred[:na]))
        run_jobs(pool, jobs, lambda job: grid.update(1 if isinstance(job, CellJob) else 0))

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
        cap = cells_cap(self.profile, *plugins)
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
        threat_model(attack.threat_model).check_eps(self.eps_of(attack), data.SHAPE)
        return attack

    def _defense(self, name: str) -> Defense:
        return instantiate(defense_class(name), self.profile, self.settings.get(name))

    # -- models --------------------------------------------------------------------------------

    def model(self, defense: Defense) -> nn.Module:
        """The trained model of `defense` on the run's device: from the cache, or trained now
        (as a unit of work of its own) and cached; a pretrained defense's as it came."""
        key = self.model_key(defense)[0]
        self._pin_threads()  # training differs in the last bits between thread counts
        model = build_model(defense, self.dataset, self.seed)
        if defense.pretrained:  # a user's trained model: its weights came with build()
            log.info("%s: a pretrained model (key %s), not trained here", defense.name, key[:12])
        elif not self.cache.load(model, defense.name, key):
            state, seconds = train_model(defense, self.dataset, self.seed, not self.quiet)
            self._store_trained(defense, model, state, seconds)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model.to(self._device)

    def _pin_threads(self) -> None:
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _store_trained(
        self, defense: Defense, model: nn.Module, state: dict[str, Any], seconds: float
    ) -> None:
        key, config = self.model_key(defense)
        model.load_state_dict(state)
        self.cache.save(model, defense.name, key, {**config, "train_time_s": round(seconds, 3)})

    def _train(self, defenses: list[Defense], pool: Any) -> None:
        """Train every defense this run needs and the cache lacks, each as one task."""
        missing = [
            d
            for d in defenses
            if not d.pretrained and not self.cache.has(d.name, self.model_key(d)[0])
        ]
        if not missing:
            return
        tasks = [
            Task(d.name, train_model, (d, self.dataset, self.seed, not self.quiet)) for d in missing
        ]
        by_name = {d.name: d for d in missing}

        def done(task: Task, result: tuple[dict[str, Any], float]) -> None:
            defense = by_name[task.key]
            model = build_model(defense, self.dataset, self.seed)
            self._store_trained(defense, model, *result)

        def failed(task: Task, exc: BaseException) -> None:
            raise RBError(f"training {task.key} failed: {exc}") from exc

        pool.map(tasks, done, failed)


def run(
    attacks: Sequence[str],
    defenses: Sequence[str],
    *,
    results_dir: str | Path = "results",
    quiet: bool = True,
    **settings: Any,
) -> pd.DataFrame:
    """Python API: run attacks x defenses, write the result files, return the leaderboard.
    `settings` are Runner's fields (dataset, profile, n, seed, eps, budget, settings, save_adv,
    eot, device, executor, address, shard_size, threads)."""
    try:
        runner = Runner(results_dir=Path(results_dir), quiet=quiet, **settings)
    except TypeError as exc:
        raise RBError(f"run(): {exc}") from None
    return runner.run(attacks, defenses)
