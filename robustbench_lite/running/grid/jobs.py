"""Units of work as jobs: an attack cell, shard by shard, and a model's diagnostics. Each job is
built from the run's plan and plain values (`JobContext`), hands its tasks to the executor (with
every other job of the defense, so no worker waits for one cell), and writes its files on the
driver as the results come back; it knows nothing of the runner."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from robustbench_lite.errors import RBError, guarded, one_line
from robustbench_lite.protocol import checks
from robustbench_lite.protocol.bpda import route_through_approximation
from robustbench_lite.protocol.contracts import Attack, Defense
from robustbench_lite.protocol.evaluate import CellArrays, batches_of, evaluate_shard, initial
from robustbench_lite.protocol.recipe import ModelRecipe
from robustbench_lite.protocol.spec import cap, derive_seed
from robustbench_lite.running.grid.executors import Task, timed
from robustbench_lite.running.grid.plan import RunPlan
from robustbench_lite.running.own.data import data_key
from robustbench_lite.store import cell_record as cell_file
from robustbench_lite.store import shards
from robustbench_lite.store.files import config_hash, seal, write_json
from robustbench_lite.store.layout import GridLayout, adv_path
from robustbench_lite.store.records import versions
from robustbench_lite.store.reuse import is_current

log = logging.getLogger(__name__)


@dataclass
class RunLog:
    """What a run did, as it does it: the result files taken from earlier runs, the cells it
    found to compute (with why), those written now, and the cells that failed (with why)."""

    reused: list[Path] = field(default_factory=list)
    pending: list[tuple[Path, str]] = field(default_factory=list)
    computed: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobContext:
    """The run-wide values every job needs: what to compute, where to write, what to record."""

    plan: RunPlan
    layout: GridLayout
    log: RunLog
    device: str = "cpu"
    executor: str = "local"
    shard_size: int = 1  # batches per task
    save_adv: bool = False  # also write each cell's verified x_adv beside its JSON


class CellJob:
    """One attack cell as shard tasks. Finished shards of an earlier run are merged up front;
    each new one is written as it arrives; once all are in, `finish` writes the cell file (a
    failed shard fails the cell, not the run). The cell's wall time is the sum of its shards'."""

    def __init__(
        self,
        ctx: JobContext,
        defense: Defense,
        recipe: ModelRecipe,
        attack: Attack,
        x: torch.Tensor,
        y: torch.Tensor,
        clean_pred: torch.Tensor,
        *,
        weights: str | None,
        zoo: str = "none",
        plain: bool = False,
    ) -> None:
        self.ctx, self.defense, self.attack, self.weights = ctx, defense, attack, weights
        self.zoo = zoo  # the SHA-256 of the zoo manifest the weights came from, or "none"
        self.config = ctx.plan.cell_config(defense, attack, len(y), plain)
        self.digest = config_hash(self.config)
        self.spec = ctx.plan.cell_spec(defense, attack, plain)
        self.path = ctx.layout.cell(defense.name, self.spec.cell)
        self.x = x
        self.arrays = initial(x, y, clean_pred)
        self.batches = batches_of(self.arrays.correct, self.spec.batch_size)  # its units
        step, n = ctx.shard_size, len(self.batches)
        self.groups = [list(range(i, min(i + step, n))) for i in range(0, n, step)]
        self.seconds = 0.0
        data = data_key(ctx.plan.source)  # a user's data key its shards too: others not merged
        self.shard_key = self.digest if data.pinned else config_hash([self.digest, data.sha256])
        for k, record in shards.read_shards(self.path, self.shard_key).items():
            # A shard counts only for the group of exactly its samples: one written under
            # another batch or shard size (same config) covers others, and is recomputed.
            if k >= len(self.groups) or record["index"] != self._samples_of(k):
                continue
            shards.merge_shard(self.arrays, record, self.path)
            self.groups[k] = []
            self.seconds += float(record.get("seconds", 0.0))
        self.tasks = [
            Task(
                (self.spec.cell, k),
                timed,
                (evaluate_shard, self.spec, attack, recipe, x, y, clean_pred, group),
            )
            for k, group in enumerate(self.groups)
            if group
        ]
        self.remaining = {task.key for task in self.tasks}
        self.errors: list[BaseException] = []

    def _samples_of(self, k: int) -> list[int]:
        """The sample indices of shard group k (its batches', in order)."""
        return [i for b in self.groups[k] for i in self.batches[b].tolist()]

    def done(self, task: Task, result: tuple[CellArrays, float]) -> None:
        arrays, seconds = result
        k = task.key[1]
        index = torch.cat([self.batches[b] for b in self.groups[k]])
        record = shards.write_shard(
            self.path, self.shard_key, k, index, arrays, seconds, save_adv=self.ctx.save_adv
        )
        shards.merge_shard(self.arrays, record, self.path)
        self.seconds += seconds
        self.remaining.discard(task.key)

    def failed(self, task: Task, exc: BaseException) -> None:
        self.errors.append(exc)
        self.remaining.discard(task.key)

    def finish(self) -> None:
        """Write the cell file (all shards in), or record the cell as failed."""
        ctx, defense, spec = self.ctx, self.defense, self.spec
        if self.errors:
            exc = self.errors[0]
            reason = (
                str(exc)
                if isinstance(exc, RBError)
                else f"{one_line(exc)} (raised by attack {self.attack.name} or the model of "
                f"{defense.name})"
            )
            ctx.log.failed.append(f"{defense.name} x {spec.cell}: {reason}")
            log.error("%s x %s failed: %s", defense.name, spec.cell, reason)
            return
        record = cell_file.build(
            self.config,
            cell=spec.cell,
            knowledge=self.attack.knowledge,
            minimal=self.attack.minimal,
            arrays=self.arrays,
            provenance={
                "no_eot": defense.randomized and not ctx.plan.eot,
                "transfer": self.attack.surrogate_defense() is not None,
                **({"bpda": self.config["bpda"]} if "bpda" in self.config else {}),
                "eot_draws": spec.eot_draws,
                "versions": versions(),
                "weights_sha256": self.weights,
                "zoo_sha256": self.zoo,
                "device": ctx.device,
                "executor": ctx.executor,
                "wall_time_s": round(self.seconds, 3),
                "profile": ctx.plan.profile.name,
                "max_eval_samples": self._cap(),
                "data_sha256": ctx.plan.source.content_sha256(),  # reused only on the same data
            },
        )
        if ctx.save_adv:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tensors = {"x_adv": self.arrays.x_verified.contiguous(), "x": self.x.cpu().contiguous()}
            save_file(tensors, str(adv_path(self.path)))
        cell_file.write(self.path, record)
        shards.clear_shards(self.path)
        ctx.log.computed.append(self.path)
        log.info(
            "%s x %s: clean %.3f, robust %.3f (%s)",
            defense.name,
            spec.cell,
            record.clean_acc,
            record.robust_acc,
            self.path,
        )

    def _cap(self) -> int | None:
        return cap(self.ctx.plan.profile.name, self.defense, self.attack)


def _checks_on_fresh(
    recipe: ModelRecipe, x: torch.Tensor, y: torch.Tensor, *, bpda: bool, **kw: Any
) -> Any:
    """checks.run_checks on an instance of their own, built fresh from the recipe; with `bpda`,
    its gradients are taken through the declared front steps' approximations, as the white-box
    attacks take them (its answers stay the true forward pass)."""
    model = recipe.make()
    if bpda:
        route_through_approximation(model, recipe.name)
    with guarded(f"the diagnostics of the model of {recipe.name}"):
        return checks.run_checks(model, x, y, **kw)


class DiagnosticsJob:
    """The model's diagnostics (protocol/checks.py), once per model, beside its cells: a task that
    runs next to the cells' shards, not on the driver before them."""

    def __init__(
        self,
        ctx: JobContext,
        defense: Defense,
        recipe: ModelRecipe,
        x: torch.Tensor,
        y: torch.Tensor,
        clean_pred: torch.Tensor,
        *,
        weights: str | None,
    ) -> None:
        self.defense = defense
        plan = ctx.plan
        self.config = {**plan.diagnostics_config(defense), "weights_sha256": weights}
        step = defense.front_step()
        if step is not None:  # keyed only here: models without a front step keep their hashes
            self.config["bpda"] = step
        self.digest = config_hash(self.config)
        self.path = ctx.layout.diagnostics(defense.name)
        self.data_sha256 = plan.source.content_sha256()
        self.tasks: list[Task] = []
        if not is_current(self.path, self.digest, data=data_key(plan.source)):
            keep = clean_pred == y
            run = functools.partial(
                _checks_on_fresh,
                bpda=step is not None,
                randomized=defense.randomized,
                eot_draws=plan.eot_draws(defense),
                prediction_draws=defense.prediction_draws(),
                seed=derive_seed(plan.seed, "diagnostics", plan.dataset, defense.name),
            )
            key = ("diagnostics", defense.name)
            self.tasks = [Task(key, timed, (run, recipe, x[keep], y[keep]))]
        self.remaining = {task.key for task in self.tasks}

    def done(self, task: Task, result: tuple[dict[str, Any], float]) -> None:
        found, seconds = result
        record: dict[str, Any] = {
            "defense": self.defense.name,
            "config": self.config,
            "config_hash": self.digest,
        }
        record.update(found)
        record["weights_sha256"] = self.config["weights_sha256"]
        record["data_sha256"] = self.data_sha256
        record["wall_time_s"] = round(seconds, 3)
        write_json(self.path, seal(record))
        for code, detail in found["flags"].items():
            log.warning("%s: %s (%s)", self.defense.name, code, detail)
        self.remaining.discard(task.key)

    def failed(self, task: Task, exc: BaseException) -> None:
        raise exc  # a model that fails its checks is one RBError (guarded), the run stops on it

    def finish(self) -> None:
        pass
