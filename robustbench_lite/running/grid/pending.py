"""Which cells a run must compute, and why (`new`, `does not verify`, made under another config,
on other weights or data: store/reuse.py), and which it reuses: the one place a run and its dry
run (`rb run --dry-run`) decide that, each cell logged in the run's `RunLog`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from robustbench_lite.protocol.contracts import Attack, DataSource, Defense
from robustbench_lite.protocol.spec import incompatibility
from robustbench_lite.running.grid.jobs import RunLog
from robustbench_lite.running.grid.plan import RunPlan
from robustbench_lite.running.own.data import data_key
from robustbench_lite.store.files import config_hash
from robustbench_lite.store.reuse import cell_staleness

log = logging.getLogger(__name__)


class Grid(Protocol):
    """What the decision reads of a run (the `Runner`): its plan, data, log, cell paths and the
    weights each defense is evaluated with."""

    @property
    def plan(self) -> RunPlan: ...

    @property
    def source(self) -> DataSource: ...

    @property
    def log(self) -> RunLog: ...

    def cell_path(self, defense: Defense, attack: Attack, plain: bool = False) -> Path: ...

    def weights_id(self, defense: Defense) -> str | None: ...


#: Per defense, its cells still to compute: (attack, plain), plain naming a `@no-bpda` cell.
Work = list[tuple[Defense, list[tuple[Attack, bool]]]]


def pending(runner: Grid, attacks: list[Attack], defenses: list[Defense], n: int) -> Work:
    """Per defense, the cells not current, each logged with why (`runner.log.pending`); a pair
    that cannot run is skipped with a warning, a defense unfit for the data once."""
    work: Work = []
    shape, classes = runner.source.shape, runner.source.num_classes
    for defense in defenses:
        unfit = defense.unsupported(shape, classes)
        if unfit:  # like an impossible pair: said once, up front
            log.warning("skipping %s on %s: %s", defense.name, runner.source.name, unfit)
            continue
        runnable = []
        for attack in attacks:
            reason = incompatibility(attack, defense) or attack.unsupported(shape, classes)
            for plain in runner.plan.variants(defense, attack):
                na = runner.plan.samples(n, defense, attack)
                why = staleness(runner, defense, attack, na, plain)
                if why is None:
                    continue
                if reason:
                    log.warning("skipping %s x %s: %s", defense.name, attack.name, reason)
                    break
                runnable.append((attack, plain))
                runner.log.pending.append((runner.cell_path(defense, attack, plain), why))
        if runnable or defense.certifies:
            work.append((defense, runnable))
    return work


def staleness(runner: Grid, defense: Defense, attack: Attack, n: int, plain: bool) -> str | None:
    """Why the cell must be computed, or None: its file is reused (and logged as such)."""
    path = runner.cell_path(defense, attack, plain)
    digest = config_hash(runner.plan.cell_config(defense, attack, n, plain))
    why = cell_staleness(path, digest, runner.weights_id(defense), data_key(runner.source))
    if why is None:
        log.info("%s x %s: reused %s", defense.name, attack.name, path)
        runner.log.reused.append(path)
    return why
