"""The runner: crosses attacks x defenses, trains or loads each model once, and hands each cell to
the protocol's evaluation (protocol/evaluate.py), which verifies every adversarial example and
counts every query itself; one JSON file per cell (store/)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from robustbench_lite.data import Dataset
from robustbench_lite.errors import RBError, stop_on_signals
from robustbench_lite.protocol import devices
from robustbench_lite.protocol.contracts import Attack, DataSource, Defense
from robustbench_lite.protocol.oracle import STALE
from robustbench_lite.protocol.registry import (
    DEFAULT_DATASET,
    attack_class,
    attack_names,
    defense_class,
    defense_names,
    instantiate,
    resolve_names,
)
from robustbench_lite.protocol.spec import profile_named
from robustbench_lite.protocol.threat_models import threat_model
from robustbench_lite.report import invariants, leaderboard, tables
from robustbench_lite.running.grid.executors import EXECUTORS, Job, executor, run_jobs
from robustbench_lite.running.grid.jobs import CellJob, DiagnosticsJob, JobContext, RunLog
from robustbench_lite.running.grid.models import Models, check_weights_from
from robustbench_lite.running.grid.pending import pending
from robustbench_lite.running.grid.plan import RunPlan
from robustbench_lite.running.grid.trained import Evaluated, certify_defense
from robustbench_lite.running.own.data import resolve_source
from robustbench_lite.running.own.home import settle
from robustbench_lite.running.own.model import UserModel
from robustbench_lite.store.files import writable_dir
from robustbench_lite.store.layout import GridLayout
from robustbench_lite.store.models import ModelCache

log = logging.getLogger(__name__)


@dataclass
class Runner:
    """One run's settings; `run` crosses the given attacks and defenses."""

    dataset: str | DataSource = DEFAULT_DATASET  # a registered name, a PATH, or a DataSource
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
    retrain: bool = False  # train anew instead of loading the zoo's model of a config
    only_plain: bool | None = None  # a declared front step's cells: only plain / BPDA ones

    def __post_init__(self) -> None:
        self.results_dir = Path(self.results_dir)
        self.source = resolve_source(self.dataset)
        self.dataset = self.source.name
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
        self.plan = RunPlan(
            source=self.source,
            profile=profile_named(self.profile),
            n=self.n,
            seed=self.seed,
            eps=self.eps,
            budget=self.budget,
            eot=self.eot,
            batch_size=self.batch_size,
            only_plain=self.only_plain,
        )
        self.layout = GridLayout.of(self.results_dir, self.dataset, self.profile)
        self.log = RunLog()
        self.models = Models(
            self.plan, self.cache, self._device, self.quiet, self.threads, self.retrain
        )

    @property
    def cell_dir(self) -> Path:
        return self.layout.path

    @property
    def reused(self) -> list[Path]:
        """After `run`: the cell (and certificate) files taken from earlier runs."""
        return self.log.reused

    @property
    def computed(self) -> list[Path]:
        """After `run`: the cell files computed now."""
        return self.log.computed

    @property
    def failed(self) -> list[str]:
        return self.log.failed

    def context(self) -> JobContext:
        """The run-wide values its jobs are built from."""
        return JobContext(
            plan=self.plan,
            layout=self.layout,
            log=self.log,
            device=str(self._device),
            executor=self.executor,
            shard_size=self.shard_size,
            save_adv=self.save_adv,
        )

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
        self.models.pin_threads()
        self.models.hand_surrogates(built_attacks, self.settings)
        test = self.source.load("test")
        self.source.content_sha256(test)  # hashed once, from the split loaded here
        n = self.plan.test_samples(len(test))
        work = pending(self, built_attacks, built_defenses, n)
        pool = executor(self.executor, self.address)
        self.models.train_missing([d for d, _ in work], pool)
        total = sum(len(r) for _, r in work)
        with tqdm(total=total, desc="grid", unit="cell", disable=self.quiet or total < 2) as grid:
            for defense, runnable in work:
                self._evaluate_defense(defense, runnable, built_attacks, test, n, pool, grid)
        board = leaderboard.build(self.cell_dir)
        tables.save_grid(board, self.cell_dir)
        if self.failed:
            raise RBError(f"{len(self.failed)} cell(s) failed: " + "; ".join(self.failed))
        broken = invariants.violations(self.cell_dir)
        if broken:
            raise RBError("soundness invariant broken: " + "; ".join(broken))
        return board

    def preview(self, attacks: Iterable[str], defenses: Iterable[str | Defense]) -> RunLog:
        """What `run` would do, doing none of it (`rb run --dry-run`): its log with the cells to
        compute and why (`pending`) and those it would reuse; nothing is trained or attacked."""
        built_attacks, built_defenses = self.prepare(attacks, defenses)
        self.models.name_surrogates(built_attacks, self.settings)
        pending(
            self,
            built_attacks,
            built_defenses,
            self.plan.test_samples(len(self.source.load("test"))),
        )
        return self.log

    def _evaluate_defense(
        self,
        defense: Defense,
        runnable: list[tuple[Attack, bool]],
        attacks: list[Attack],
        test: Dataset,
        n: int,
        pool: Any,
        grid: Any,
    ) -> None:
        """One defense's certificates, diagnostics and cells, on its model loaded once."""
        ctx, weights = self.context(), self.weights_id(defense)
        nd = self.plan.samples(n, defense)
        x, y = test.x[:nd].to(self._device), test.y[:nd].to(self._device)
        evaluated = Evaluated(ctx, defense, x, lambda: self.model(defense))
        if defense.certifies:
            certify_defense(ctx, defense, x, y, attacks, evaluated, weights=weights)
        if not runnable:
            return
        recipe, clean_pred = evaluated.get()
        jobs: list[Job] = [DiagnosticsJob(ctx, defense, recipe, x, y, clean_pred, weights=weights)]
        for attack, plain in runnable:
            na = self.plan.samples(n, defense, attack)
            job = CellJob(
                ctx,
                defense,
                recipe,
                attack,
                x[:na],
                y[:na],
                clean_pred[:na],
                weights=weights,
                zoo=self.models.zoo_id(defense),
                plain=plain,
            )
            jobs.append(job)
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
        asked = [d.requested if isinstance(d, UserModel) else d.name for d in given]
        for d, name in zip(given, asked, strict=True):  # its cells go to results/.../<name>/
            if name in defense_names() or asked.count(name) > 1:
                raise RBError(f"the name {name!r} is taken by another defense; choose another")
            if isinstance(d, UserModel):  # other weights under its name: a folder of its own
                settle(d, self.layout)
        unknown = sorted(set(self.settings) - set(attack_list + defense_list))
        if unknown:
            raise RBError(
                f"--set names {', '.join(unknown)}, which is not among the selected plugins "
                f"({', '.join(attack_list + defense_list)})"
            )
        built = [self._attack(name) for name in attack_list]
        built_defenses = [self._defense(name) for name in defense_list] + given
        check_weights_from(built_defenses, self.settings)
        writable_dir(self.results_dir, "results folder")
        writable_dir(self.cache.root.parent, "RB_HOME")
        return built, built_defenses

    def _attack(self, name: str) -> Attack:
        attack = instantiate(attack_class(name), self.profile, self.settings.get(name))
        threat_model(attack.threat_model).check_eps(self.plan.eps_of(attack), self.source.shape)
        return attack

    def _defense(self, name: str) -> Defense:
        return instantiate(defense_class(name), self.profile, self.settings.get(name))

    def cell_path(self, defense: Defense, attack: Attack, plain: bool = False) -> Path:
        """Where the cell of `attack` on `defense` is written (`plain`: its `@no-bpda` cell)."""
        return self.layout.cell(defense.name, self.plan.cell_name(attack, defense, plain))

    # -- models --------------------------------------------------------------------------------

    def weights_id(self, defense: Defense) -> str | None:
        """The SHA-256 of the weights this run evaluates `defense` with (None if not trained)."""
        return self.models.weights_id(defense)

    def model(self, defense: Defense) -> nn.Module:
        """The trained model of `defense` on the run's device (see running/grid/models.py)."""
        return self.models.model(defense)
