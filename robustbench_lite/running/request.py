"""One request: what a run evaluates, resolved and checked once, at the boundary.

`rb run` (cli/main.py) and the Python API (`robustbench_lite.run()` / `evaluate()`) build the same
`RunRequest` from what they were given: attack and defense names resolved (a string is a name or a
comma list, never its letters), a user's models built (weights, normalization, randomness in their
config), the data resolved to one `DataSource` (read once, its content hash in every cell), the eps
plan (running/eps.py: `8/255`, `linf:8/255`, an eps equal to the default is the default cell) and
every value a `Runner` checks. `RunRequest.build` does every check that needs no work, so a bad
request fails in one line before anything is trained or attacked; `execute` then runs the model
checks (a few forward passes) and the runners, one per eps of the plan.

The runners are built here, from the request (`runner_kwargs`): their constructor stays what
other code and the tests use directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import DataSource
from robustbench_lite.protocol.registry import (
    attack_class,
    attack_names,
    defense_names,
    instantiate,
    resolve_names,
)
from robustbench_lite.running.eps import Eps, eps_groups, parse_eps_spec
from robustbench_lite.running.grid.jobs import RunLog
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own.data import from_tensors, resolve_source
from robustbench_lite.running.own.model import UserModel

#: What `eps=` takes: a number, a string (`8/255`, `linf:8/255`, `l2:0.5,1`), a list of those, or
#: {threat model: eps or [eps, ...]}.
EpsGiven = (
    float | str | Sequence[float | str] | Mapping[str, float | str | Sequence[float | str]] | None
)


@dataclass(frozen=True)
class RunRequest:
    """A run, resolved: every name known, the data loaded once, the eps plan fixed, every value
    checked. Build it with `RunRequest.build`; `execute` runs it."""

    attacks: tuple[str, ...]  # registered attack names, in order
    defenses: tuple[str, ...]  # registered defense names (reference rows)
    models: tuple[UserModel, ...]  # a user's own models: weights, normalization, randomness
    source: DataSource  # the data, resolved once (`source.content_sha256()` keys every cell)
    profile: str
    eps: tuple[Eps, ...]  # as given; () for the data's defaults
    plan: tuple[tuple[float | None, tuple[str, ...]], ...]  # (eps, its attacks); None: default
    threat_models: tuple[str, ...] | None = None  # the attacks kept; None: every selected one's
    budget: int | None = None
    n: int | None = None
    seed: int = 0
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    results: Path = Path("results")
    device: str | None = None
    quiet: bool = False
    save_adv: bool = False
    eot: bool = True
    executor: str = "local"
    address: str | None = None
    shard_size: int = 1
    threads: int | None = 1
    retrain: bool = False
    #: The runners of the plan, built and prepared by `build` (not part of the value).
    runs: tuple[tuple[Runner, tuple[str, ...]], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def build(
        cls,
        *,
        attacks: str | Sequence[str],
        defenses: str | Sequence[str] = (),
        models: Sequence[UserModel] = (),
        dataset: Any,
        profile: str = "standard",
        eps: EpsGiven = None,
        threat_models: str | Sequence[str] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        results: str | Path = "results",
        **values: Any,
    ) -> RunRequest:
        """Resolve and check a request (nothing trained or attacked); `values` are the plain
        fields (budget, n, seed, device, quiet, save_adv, eot, executor, address, shard_size,
        threads, retrain). An RBError, one line, for anything wrong."""
        chosen = resolve_names(names_of(attacks, "attacks"), attack_names(), "attack")
        refs = names_of(defenses, "defenses")
        if not (refs or models):
            raise RBError("give --defense (-d) or --model (see `rb run --help`)")
        refs = resolve_names(refs, defense_names(), "defense") if refs else []
        settings = {k: dict(v) for k, v in (settings or {}).items()}
        tms = {
            a: str(instantiate(attack_class(a), profile, settings.get(a)).threat_model)
            for a in chosen
        }
        kept = _threat_models(threat_models, tms)
        tms = {a: tm for a, tm in tms.items() if kept is None or tm in kept}
        source = data_source(dataset)
        spec = parse_eps_spec(eps_items(eps))
        plan = tuple(
            (value, tuple(names)) for value, names in eps_groups(spec, tms, source.default_eps)
        )
        request = cls(
            attacks=tuple(tms),
            defenses=tuple(refs),
            models=tuple(models),
            source=source,
            profile=profile,
            eps=tuple(spec),
            plan=plan,
            threat_models=kept,
            settings=settings,
            results=Path(results),
            **values,
        )
        runs = tuple((Runner(**request.runner_kwargs(value)), names) for value, names in plan)
        for runner, names in runs:  # every eps of a sweep is checked before any work starts
            runner.prepare(names, request.rows())
        object.__setattr__(request, "runs", runs)
        return request

    def rows(self) -> list[str | UserModel]:
        """The defenses a runner crosses the attacks with: reference names, then user models."""
        return [*self.defenses, *self.models]

    def runner_kwargs(self, eps: float | None) -> dict[str, Any]:
        """The `Runner` fields of this request at one eps of its plan."""
        return {
            "dataset": self.source,
            "profile": self.profile,
            "n": self.n,
            "seed": self.seed,
            "results_dir": self.results,
            "eps": eps,
            "budget": self.budget,
            "settings": self.settings,
            "quiet": self.quiet,
            "save_adv": self.save_adv,
            "eot": self.eot,
            "device": self.device,
            "executor": self.executor,
            "address": self.address,
            "shard_size": self.shard_size,
            "threads": self.threads,
            "retrain": self.retrain,
        }

    @property
    def cell_dir(self) -> Path:
        """The grid folder this request writes (`<results>/<dataset>/<profile>/`)."""
        return self.runs[0][0].cell_dir

    def preview(self) -> list[RunLog]:
        """What `execute` would compute and why, per runner (`RunLog.pending`, `reused`), doing
        none of it: no check of a user's model, no training, no attack (`rb run --dry-run`)."""
        return [runner.preview(names, self.rows()) for runner, names in self.runs]

    def execute(self) -> pd.DataFrame:
        """The user models' checks (protocol/checks.py: a model that cannot be evaluated stops
        here), then every runner of the plan; returns the leaderboard of the grid."""
        for model in self.models:
            model.run_checks(self.source)
        board = pd.DataFrame()
        for runner, names in self.runs:
            board = runner.run(names, self.rows())
        return board


def names_of(given: str | Sequence[str] | None, what: str) -> list[str]:
    """Plugin names as given: one string (a name, or a comma list: `"pgd"` is one attack, not its
    letters) or a sequence of such strings."""
    if given is None:
        return []
    if isinstance(given, str):
        return [given]
    if isinstance(given, Sequence) and all(isinstance(g, str) for g in given):
        return list(given)
    raise RBError(f"{what}= takes a name, a comma list or a list of names, got {given!r}")


def _threat_models(
    given: str | Sequence[str] | None, tms: Mapping[str, str]
) -> tuple[str, ...] | None:
    """The threat models kept (lower case), or None for all; an RBError when none of the selected
    attacks has one of them."""
    if given is None:
        return None
    items = names_of(given, "threat_models")
    kept = tuple(part.strip().lower() for item in items for part in item.split(",") if part.strip())
    if not any(tm in kept for tm in tms.values()):
        have = ", ".join(f"{a}: {tm}" for a, tm in tms.items())
        raise RBError(f"no selected attack has threat model {', '.join(kept)} ({have})")
    return kept


def eps_items(eps: EpsGiven) -> list[str | float]:
    """`eps=` as `--eps` items: a mapping {threat model: values} becomes `tm:v1,v2` items."""
    if eps is None:
        return []
    if isinstance(eps, Mapping):
        items: list[str | float] = []
        for tm, values in eps.items():
            listed = [values] if isinstance(values, str | int | float) else list(values)
            texts = [v if isinstance(v, str) else repr(float(v)) for v in listed]
            items.append(f"{tm}:{','.join(texts)}")
        return items
    if isinstance(eps, str | int | float):
        return [eps]
    return list(eps)


def data_source(dataset: Any) -> DataSource:
    """`dataset=`: a registered name, a PATH, a DataSource, (x, y) tensors or a torch Dataset."""
    if isinstance(dataset, tuple):
        return from_tensors(*dataset)
    if hasattr(dataset, "__getitem__") and not isinstance(dataset, str | Path | DataSource):
        return from_tensors(dataset)
    return resolve_source(dataset)
