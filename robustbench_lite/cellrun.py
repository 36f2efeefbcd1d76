"""One attack cell, shard by shard: finished shards of an earlier run are reused, the rest go to
the executor as tasks (with every other cell of the defense, so no worker waits for one cell),
and the driver alone writes shard and cell files."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from robustbench_lite import cell, store
from robustbench_lite.cache import config_hash, seal, write_json
from robustbench_lite.errors import RBError, one_line
from robustbench_lite.executors import Task, timed
from robustbench_lite.plugins import Attack, Defense, Plugin
from robustbench_lite.recipe import ModelRecipe
from robustbench_lite.store import adv_path, cell_record, versions

if TYPE_CHECKING:
    from robustbench_lite.runner import Runner

log = logging.getLogger(__name__)


class CellJob:
    """One attack cell as shard tasks. Finished shards of an earlier run are merged up front;
    each new one is written as it arrives; once all are in, `finish` writes the cell file (a
    failed shard fails the cell, not the run). The cell's wall time is the sum of its shards'."""

    def __init__(
        self,
        runner: Runner,
        defense: Defense,
        recipe: ModelRecipe,
        attack: Attack,
        x: torch.Tensor,
        y: torch.Tensor,
        clean_pred: torch.Tensor,
    ) -> None:
        self.runner, self.defense, self.attack = runner, defense, attack
        self.config = runner.cell_config(defense, attack, len(y))
        self.digest = config_hash(self.config)
        self.spec = runner.cell_spec(defense, attack)
        self.path = runner.cell_path(defense, attack)
        self.arrays = cell.initial(x, y, clean_pred)
        self.batches = cell.batches_of(self.arrays.correct, runner.batch_size)
        step = runner.shard_size
        n = len(self.batches)
        self.groups = [list(range(i, min(i + step, n))) for i in range(0, n, step)]
        self.seconds = 0.0
        for record in store.read_shards(self.path, self.digest).values():
            store.merge_shard(self.arrays, record, self.path)
            self.groups[int(record["shard"])] = []
            self.seconds += float(record.get("seconds", 0.0))
        self.tasks = [
            Task(
                (self.spec.cell, k),
                timed,
                (cell.evaluate_shard, self.spec, attack, recipe, x, y, clean_pred, group),
            )
            for k, group in enumerate(self.groups)
            if group
        ]
        self.remaining = {task.key for task in self.tasks}
        self.errors: list[BaseException] = []

    def done(self, task: Task, result: tuple[cell.CellArrays, float]) -> None:
        arrays, seconds = result
        k = task.key[1]
        index = torch.cat([self.batches[b] for b in self.groups[k]])
        record = store.write_shard(
            self.path, self.digest, k, index, arrays, seconds, save_adv=self.runner.save_adv
        )
        store.merge_shard(self.arrays, record, self.path)
        self.seconds += seconds
        self.remaining.discard(task.key)

    def failed(self, task: Task, exc: BaseException) -> None:
        self.errors.append(exc)
        self.remaining.discard(task.key)

    def finish(self) -> None:
        """Write the cell file (all shards in), or record the cell as failed."""
        runner, defense, spec = self.runner, self.defense, self.spec
        if self.errors:
            exc = self.errors[0]
            reason = (
                str(exc)
                if isinstance(exc, RBError)
                else f"{one_line(exc)} (raised by attack {self.attack.name} or the model of "
                f"{defense.name})"
            )
            runner.failed.append(f"{defense.name} x {spec.cell}: {reason}")
            log.error("%s x %s failed: %s", defense.name, spec.cell, reason)
            return
        record = cell_record(
            self.config,
            cell=spec.cell,
            knowledge=self.attack.knowledge,
            minimal=self.attack.minimal,
            arrays=self.arrays,
        )
        record.update(
            {
                "no_eot": defense.randomized and not runner.eot,
                "eot_draws": spec.eot_draws,
                "versions": versions(),
                "weights_sha256": runner.weights_id(defense),
                "device": str(runner._device),
                "executor": runner.executor,
                "wall_time_s": round(self.seconds, 3),
                "profile": runner.profile,
                "max_eval_samples": cap(runner.profile, defense, self.attack),
            }
        )
        if runner.save_adv:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"x_adv": self.arrays.x_verified.contiguous()}, str(adv_path(self.path)))
        write_json(self.path, seal(record))
        store.clear_shards(self.path)
        runner.computed.append(self.path)
        log.info(
            "%s x %s: clean %.3f, robust %.3f (%s)",
            defense.name,
            spec.cell,
            record["clean_acc"],
            record["robust_acc"],
            self.path,
        )


def cap(profile: str, *plugins: Plugin) -> int | None:
    """The smallest sample cap the plugins declare for the profile (None: no cap)."""
    caps = [c for p in plugins if (c := p.max_eval_samples.get(profile)) is not None]
    return min(caps) if caps else None
