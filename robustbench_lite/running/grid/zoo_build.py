"""`rb zoo` (`make zoo`): rebuild the model zoo from the model cache after a deliberate
retraining: every defense of the given profiles (or those named), trained where the cache lacks it (one torch
thread), written into the zoo with its card (architecture, parameters, recipe, training time
and threads, torch version, CPU, clean accuracy) and pinned by its SHA-256; entries of models
not rebuilt are dropped. The committed leaderboards must then be regenerated on these weights."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.registry import defense_class, instantiate, resolve_names
from robustbench_lite.protocol.registry import defense_names as registered
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own.data import resolve_source
from robustbench_lite.store.models import ModelCache
from robustbench_lite.store.zoo import Zoo, ZooEntry

log = logging.getLogger(__name__)


def build_zoo(
    profiles: Sequence[str],
    defenses: Sequence[str] = ("all",),
    *,
    dataset: str = "mnist-5k",
    zoo: Zoo | None = None,
    cache: ModelCache | None = None,
    quiet: bool = True,
) -> list[ZooEntry]:
    """The zoo rebuilt from the cache for these profiles and defenses; returns its entries."""
    zoo, cache = zoo or Zoo(), cache or ModelCache()
    source = resolve_source(dataset)
    names = resolve_names(defenses, registered(), "defense")
    keep: set[str] = set()
    built = []
    for profile in profiles:
        runner = Runner(dataset=source, profile=profile, quiet=quiet, cache=cache, retrain=True)
        test = source.load("test")
        n = runner.plan.test_samples(len(test))
        for name in names:
            defense = instantiate(defense_class(name), profile)
            if defense.weights_from or defense.unsupported(source.shape, source.num_classes):
                continue  # another defense's weights (it ships none of its own), or unfit data
            model = runner.model(defense).cpu()
            key, _ = runner.plan.model_key(defense)
            meta = json.loads(cache.paths(name, key)[1].read_text())
            nd = runner.plan.samples(n, defense)
            clean = predict(model, test.x[:nd], defense.prediction_draws()) == test.y[:nd]
            entry = zoo.add(
                model,
                defense=name,
                dataset=source.name,
                profile=profile,
                key=key,
                config=defense.config(),
                train_time_s=meta.get("config", {}).get("train_time_s"),
                threads=runner.threads,
                clean_acc=float(clean.double().mean()),
                clean_n=nd,
            )
            log.info("zoo: %s (%s) %s", name, profile, entry.sha256[:12])
            keep.add(key)
            built.append(entry)
    others = {
        k for k, e in zoo.entries().items() if e.profile not in profiles or e.defense not in names
    }  # other profiles' and other defenses' entries stay: `rb zoo -d NAME` adds one defense
    zoo.replace(keep | others)
    return built
