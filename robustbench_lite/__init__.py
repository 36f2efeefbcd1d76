"""robustbench_lite: attacks x defenses -> verified, per-sample robustness numbers.

The Python API: `evaluate()` (your own model as a row of the leaderboard) and `run()` (attacks x
registered defenses). Both take `rb run`'s names and defaults and build the same request as the
CLI (running/request.py: resolved and checked once, before any work). Importing the package
imports no torch: the work is imported when a function is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustbench_lite.names import DEFAULT_DATASET

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "run"]

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from robustbench_lite.running.own.result import ModelResult
    from robustbench_lite.running.request import EpsGiven


def run(
    attacks: str | Sequence[str],
    defenses: str | Sequence[str] = (),
    *,
    dataset: Any = DEFAULT_DATASET,
    profile: str = "standard",
    eps: EpsGiven = None,
    threat_models: str | Sequence[str] | None = None,
    budget: int | None = None,
    n: int | None = None,
    seed: int = 0,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    results: str | Path = "results",
    device: str | None = None,
    quiet: bool = True,
    save_adv: bool = False,
    eot: bool = True,
    executor: str = "local",
    address: str | None = None,
    shard_size: int = 1,
    threads: int | None = 1,
    retrain: bool = False,
    results_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Run `attacks` x `defenses` (registered names: one, a comma list such as "pgd,square", or a
    list; "all" for every one), write the result files under `results` and return the
    leaderboard of that grid (a DataFrame). The arguments are `rb run`'s, with its defaults:

    - dataset: a registered name ("mnist-5k"), a PATH (.safetensors/.npz file or image folder),
      a DataSource, (x, y) tensors or a torch Dataset.
    - profile: "quick", "standard" or "paper".
    - eps: None (the data's default per threat model), a number, a string ("8/255"), a
      "linf:8/255" / "l2:0.5,1" spec, a list of those, or {threat model: eps or [eps, ...]};
      several values make a sweep, and an eps equal to the default is the default cell.
    - threat_models: keep only the attacks of these threat models ("linf", ["linf", "l2"]).
    - budget: the per-sample query budget of score- and label-based attacks.
    - n: test samples (None: the profile's); seed: the run's seed.
    - settings: hyper-parameters, {plugin: {key: value}} (`--set plugin.key=value`).
    - results: the results folder (`--results`); `results_dir` is its deprecated old name.
    - device: "auto" (None: $RB_DEVICE or auto), "cpu", "cuda" or "cuda:N".
    - quiet: no progress bars or info logs (True here; the CLI's -q).
    - save_adv, eot, executor, address, shard_size, threads, retrain: as `rb run --help` says.

    Bad input is an RBError, one line, before anything is trained or attacked."""
    from robustbench_lite.running.request import RunRequest

    if results_dir is not None:
        _deprecated("results_dir", "results")
    request = RunRequest.build(
        attacks=attacks,
        defenses=defenses,
        dataset=dataset,
        profile=profile,
        eps=eps,
        threat_models=threat_models,
        settings=settings,
        results=_results(results, results_dir),
        **_values(locals()),
    )
    return request.execute()


def evaluate(
    model: nn.Module,
    *,
    name: str,
    attacks: str | Sequence[str],
    defenses: str | Sequence[str] = (),
    dataset: Any = DEFAULT_DATASET,
    profile: str = "standard",
    eps: EpsGiven = None,
    threat_models: str | Sequence[str] | None = None,
    budget: int | None = None,
    n: int | None = None,
    seed: int = 0,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    normalize: tuple[Any, Any] | Mapping[str, Any] | None = None,
    randomized: bool = False,
    results: str | Path = "results",
    device: str | None = None,
    quiet: bool = True,
    preprocessing: Mapping[str, Any] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    bpda: Callable[[Any], Any] | None = None,
) -> ModelResult:
    """Evaluate your trained classifier (NCHW images in [0, 1] -> logits) as the row `name` of
    the leaderboard under `results`, against `attacks` (one name, a comma list such as
    "pgd,square", or a list), like RobustBench's `benchmark()`. The arguments are `rb run
    --model`'s, with its defaults (`run()` describes the shared ones: dataset, profile, eps,
    threat_models, budget, n, seed, settings, results, device, quiet; eps as 0.3, "8/255",
    "linf:8/255" or {"linf": "8/255", "l2": 0.5}), and:

    - name: the model's row and results folder (letters, digits, '.', '_', '-'). New weights
      under a name that holds other weights get a row and folder of their own
      (`<name>@<first 8 hex of their SHA-256>`), so the old row is never overwritten.
    - defenses: reference defenses to run beside it (registered names).
    - normalize: (mean, std), per channel, or {"mean": ..., "std": ...}: the model expects
      standardized inputs, (x - mean) / std is applied inside it, so attacks stay in [0, 1]
      pixels (`--normalize`; `preprocessing` is its deprecated old name).
    - randomized: the model is random by design: attacked with EOT, judged by majority vote.
    - preprocess: a non-differentiable step in front of the model (tensor -> tensor): answers and
      verdicts use it as is; white-box attacks differentiate through `bpda` (a differentiable
      approximation, the identity by default; Athalye et al. 2018), with plain `@no-bpda`
      cells beside them (`--preprocess`, `--bpda`).

    Returns a `ModelResult`: the model's own row (clean accuracy and, per threat model, the
    worst case with its 95% interval, each attack's cell, flags, rank and verdict), its folder,
    and the whole leaderboard as `.leaderboard`. Bad input is an RBError, one line, before any
    work; so is a model the pre-attack checks refuse (wrong output shape, NaN, near chance...)."""
    from robustbench_lite.running.own.model import UserModel
    from robustbench_lite.running.own.result import model_result
    from robustbench_lite.running.request import RunRequest

    if preprocessing is not None:
        _deprecated("preprocessing", "normalize")
        normalize = normalize if normalize is not None else preprocessing
    user = UserModel(
        model,
        name=name,
        randomized=randomized,
        normalize=_normalize(normalize),
        preprocess=preprocess,
        bpda=bpda,
    )
    request = RunRequest.build(
        attacks=attacks,
        defenses=defenses,
        models=[user],
        dataset=dataset,
        profile=profile,
        eps=eps,
        threat_models=threat_models,
        settings=settings,
        results=results,
        **_values(locals()),
    )
    board = request.execute()
    return model_result(board, user.name, request.cell_dir / user.name, user.home_note)


#: The plain fields of a request that `run()` and `evaluate()` pass through as given.
_PLAIN = ("budget", "n", "seed", "device", "quiet", "save_adv", "eot", "executor", "address",
          "shard_size", "threads", "retrain")  # fmt: skip


def _values(given: dict[str, Any]) -> dict[str, Any]:
    return {key: given[key] for key in _PLAIN if key in given}


def _results(results: str | Path, results_dir: str | Path | None) -> str | Path:
    """`results`, or the deprecated `results_dir` where only that was given."""
    if results_dir is None:
        return results
    if str(results) != "results" and Path(results) != Path(results_dir):
        from robustbench_lite.errors import RBError

        raise RBError("give results= only (results_dir= is its deprecated old name)")
    return results_dir


def _normalize(value: Any) -> tuple[Any, Any] | None:
    """`normalize=` as (mean, std): a pair, or a mapping with exactly `mean` and `std`."""
    if value is None or not isinstance(value, Mapping):
        return value
    if set(value) != {"mean", "std"}:
        from robustbench_lite.errors import RBError

        raise RBError("normalize= takes (mean, std) or dict(mean=..., std=...)")
    return value["mean"], value["std"]


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old}= is deprecated; use {new}= (the same as rb run's option)",
        DeprecationWarning,
        stacklevel=3,
    )
