"""One attack cell, shard by shard: finished shards of an earlier run are reused, the rest go to
the executor as tasks, and the driver alone writes shard and cell files."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn

from robustbench_lite import cell, store
from robustbench_lite.cache import config_hash, seal, write_json
from robustbench_lite.executors import Task
from robustbench_lite.plugins import Attack, Defense, Plugin
from robustbench_lite.store import adv_path, cell_record, versions

if TYPE_CHECKING:
    from robustbench_lite.runner import Runner

log = logging.getLogger(__name__)


def run_cell(
    runner: Runner,
    defense: Defense,
    model: nn.Module,
    attack: Attack,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    pool: Any,
) -> None:
    """Evaluate one cell shard by shard (finished shards of an earlier run are reused), then
    write its result file; a failed shard fails the cell, not the run."""
    start = time.perf_counter()
    config = runner.cell_config(defense, attack, len(y))
    digest = config_hash(config)
    spec = runner.cell_spec(defense, attack)
    path = runner.cell_path(defense, attack)
    arrays = cell.initial(x, y, clean_pred)
    batches = cell.batches_of(arrays.correct, runner.batch_size)
    step = runner.shard_size
    groups = [list(range(i, min(i + step, len(batches)))) for i in range(0, len(batches), step)]
    for record in store.read_shards(path, digest).values():
        store.merge_shard(arrays, record, path)
        groups[int(record["shard"])] = []
    tasks = [
        Task(k, cell.evaluate_shard, (spec, attack, model, x, y, clean_pred, group))
        for k, group in enumerate(groups)
        if group
    ]
    errors: list[BaseException] = []

    def done(task: Task, result: cell.CellArrays) -> None:
        index = torch.cat([batches[b] for b in groups[task.key]])
        record = store.write_shard(path, digest, task.key, index, result, save_adv=runner.save_adv)
        store.merge_shard(arrays, record, path)

    pool.map(tasks, done, lambda task, exc: errors.append(exc))
    if errors:
        runner.failed.append(f"{defense.name} x {spec.cell}: {errors[0]}")
        log.error("%s x %s failed: %s", defense.name, spec.cell, errors[0])
        return
    record = cell_record(
        config,
        cell=spec.cell,
        knowledge=attack.knowledge,
        minimal=attack.minimal,
        arrays=arrays,
    )
    record.update(
        {
            "no_eot": defense.randomized and not runner.eot,
            "eot_draws": spec.eot_draws,
            "versions": versions(),
            "weights_sha256": runner.weights_id(defense),
            "device": str(runner._device),
            "executor": runner.executor,
            "wall_time_s": round(time.perf_counter() - start, 3),
            "profile": runner.profile,
            "max_eval_samples": cap(runner.profile, defense, attack),
        }
    )
    if runner.save_adv:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"x_adv": arrays.x_verified.contiguous()}, str(adv_path(path)))
    write_json(path, seal(record))
    store.clear_shards(path)
    runner.computed.append(path)
    log.info(
        "%s x %s: clean %.3f, robust %.3f (%s)",
        defense.name,
        spec.cell,
        record["clean_acc"],
        record["robust_acc"],
        path,
    )


def cap(profile: str, *plugins: Plugin) -> int | None:
    """The smallest sample cap the plugins declare for the profile (None: no cap)."""
    caps = [c for p in plugins if (c := p.max_eval_samples.get(profile)) is not None]
    return min(caps) if caps else None
