"""`rb`'s command line: the argument parser, `--set` and `--eps` parsing. User errors are one
line (RBError), never argparse's usage dump."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import (
    DEFAULT_DATASET,
    attack_class,
    attack_names,
    defense_class,
)
from robustbench_lite.protocol.threat_models import THREAT_MODELS


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise RBError(f"{message} (see `{self.prog} --help`)")


def parse_settings(items: Sequence[str], plugins: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--set key=value` / `--set plugin.key=value` -> {plugin: {key: typed value}}.

    A bare key goes to every selected plugin that has it; a key no selected plugin has is an error.
    """
    classes = {name: _plugin_class(name) for name in plugins}
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RBError(f"--set expects key=value or plugin.key=value, got {item!r}")
        scope, _, key = key.strip().rpartition(".")
        targets = [scope] if scope else [n for n in plugins if key in classes[n].hyperparameters()]
        if scope and scope not in classes:
            raise RBError(
                f"--set {item}: {scope!r} is not a selected plugin ({', '.join(plugins)})"
            )
        if not targets:
            raise RBError(
                f"--set {item}: no selected plugin has a hyper-parameter {key!r} "
                f"({'; '.join(f'{n}: ' + ', '.join(classes[n].hyperparameters()) for n in plugins)})"
            )
        for name in targets:
            known = classes[name].hyperparameters()
            if key not in known:
                raise RBError(
                    f"{name} has no hyper-parameter {key!r}; known: {', '.join(known) or '(none)'}"
                )
            try:
                settings.setdefault(name, {})[key] = parse_value(text, known[key])
            except RBError as exc:
                raise RBError(f"--set {item}: {exc}") from None
    return settings


def _plugin_class(name: str) -> Any:
    return attack_class(name) if name in attack_names() else defense_class(name)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rb", description="robustbench_lite: honest adversarial robustness.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = sub.add_parser("list", help="registered attacks, defenses and datasets")
    listing.add_argument(
        "--models", action="store_true", help="the model zoo's cards instead (the shipped weights)"
    )

    zoo = sub.add_parser(
        "zoo", help="rebuild the model zoo from the model cache (training what it lacks)"
    )
    zoo.add_argument("--profile", action="append", default=[], help="quick, standard (repeat)")
    zoo.add_argument("--defense", "-d", action="append", default=[], help="default: all")
    zoo.add_argument("--dataset", default=DEFAULT_DATASET)

    run = sub.add_parser("run", help="evaluate attacks x defenses and print the leaderboard")
    run.add_argument(
        "--attack",
        "-a",
        action="append",
        required=True,
        help="attack name(s); repeat or comma-separate; 'all' for every one",
    )
    run.add_argument(
        "--defense",
        "-d",
        action="append",
        default=[],
        help="defense name(s); repeat or comma-separate; 'all' for every one",
    )
    _model_arguments(run)
    run.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="a registered dataset (`rb list`), or a PATH: a .safetensors/.npz file with x, y "
        "(and optional x_train, y_train), or an image folder PATH/<class>/*.png",
    )
    run.add_argument("--profile", default="standard", help="quick, standard or paper")
    run.add_argument("--n", type=int, default=None, help="number of test samples")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--eps",
        action="append",
        default=[],
        metavar="[TM:]E1,E2,...",
        help="perturbation budget(s), a sweep if several; TM (linf, l2, ...) limits them to "
        "that threat model's attacks (default: the threat model's budget, per DESIGN.md)",
    )
    run.add_argument(
        "--budget",
        type=int,
        default=None,
        help="per-sample query budget of score/label-based attacks",
    )
    run.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyper-parameter of a selected plugin (plugin.key=value to pick one)",
    )
    run.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    run.add_argument("--csv", type=Path, default=None, help="also write the leaderboard here")
    run.add_argument("--wide", action="store_true", help="every column, as Markdown")
    run.add_argument(
        "--save-adv",
        action="store_true",
        help="also keep each cell's verified adversarial inputs (<cell>.adv.safetensors)",
    )
    run.add_argument(
        "--no-eot",
        dest="eot",
        action="store_false",
        help="attack randomized defenses without expectation over transformation, only to show "
        "the difference; written as separate <attack>@no-eot cells",
    )
    run.add_argument(
        "--device", default=None, help="auto (default; $RB_DEVICE), cpu, cuda or cuda:N"
    )
    run.add_argument("--executor", default="local", help="local (default) or ray")
    run.add_argument("--address", default=None, help="a Ray cluster's address (--executor ray)")
    run.add_argument(
        "--shard-size", type=int, default=1, help="batches per unit of work (resume, spread)"
    )
    run.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest on 2 cores)"
    )
    run.add_argument(
        "--retrain",
        action="store_true",
        help="train anew instead of loading the zoo's model of a config (other weights: a row of "
        "their own)",
    )
    run.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)

    check = sub.add_parser("check", help="rerun a committed leaderboard's cells; fail on a fall")
    check.add_argument("--baseline", type=Path, required=True, help="a leaderboard.csv")
    _model_arguments(check)
    check.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="decide by aggregate falls beyond this fraction instead of the paired per-sample "
        "sign test",
    )
    check.add_argument("--strict", action="store_true", help="a rise beyond tolerance fails too")
    check.add_argument("--update", action="store_true", help="rewrite the baseline from the rerun")
    check.add_argument(
        "--reuse-models", action="store_true", help="use your model cache for what the zoo lacks"
    )
    check.add_argument(
        "--retrain",
        action="store_true",
        help="train every model anew in a fresh cache instead of loading the zoo's",
    )
    check.add_argument(
        "--attack", "-a", action="append", default=[], help="rerun only these attacks' cells"
    )
    check.add_argument(
        "--defense", "-d", action="append", default=[], help="rerun only these defenses' cells"
    )
    check.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)

    plot = sub.add_parser("plot", help="eps sweep, query curves and example grids as PNG files")
    plot.add_argument("--results", type=Path, default=Path("results"))
    plot.add_argument("--dataset", default=DEFAULT_DATASET)
    plot.add_argument("--profile", default="standard")

    diagnose = sub.add_parser("diagnose", help="explain the red flags of a defense's results")
    diagnose.add_argument("defense", help="the defense (a row of the leaderboard)")
    diagnose.add_argument("--results", type=Path, default=Path("results"))
    diagnose.add_argument("--dataset", default=DEFAULT_DATASET)
    diagnose.add_argument("--profile", default="standard")

    board = sub.add_parser("leaderboard", help="the leaderboard of existing results")
    board.add_argument("--results", type=Path, default=Path("results"))
    board.add_argument("--dataset", default=DEFAULT_DATASET)
    board.add_argument("--profile", default="standard")
    board.add_argument("--csv", type=Path, default=None, help="also write the leaderboard here")
    board.add_argument(
        "--wide", action="store_true", help="every column, as Markdown (default: fit the terminal)"
    )
    board.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="replace the block between <!-- leaderboard:start/end --> in this file",
    )

    attacks = sub.add_parser("attacks", help="the attack leaderboard: attacks ranked per grid")
    attacks.add_argument("--results", type=Path, default=Path("results"))
    attacks.add_argument("--dataset", default=DEFAULT_DATASET)
    attacks.add_argument("--profile", default="standard")
    attacks.add_argument("--wide", action="store_true", help="every row and model, as Markdown")

    site = sub.add_parser("site", help="a static leaderboard website from the result files")
    site.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    site.add_argument("--out", type=Path, default=Path("site"), help="where to write the site")
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """`--model`, `--weights`, `--name`, `--randomized`: a user's own model (own_model.py)."""
    parser.add_argument(
        "--model",
        metavar="PACKAGE.MODULE:FACTORY",
        default=None,
        help="evaluate your own classifier: a function (or path/file.py:FUNCTION) returning an "
        "nn.Module from NCHW images in [0, 1] to logits",
    )
    parser.add_argument(
        "--weights", type=Path, default=None, help="its weights (.safetensors; loads run no code)"
    )
    parser.add_argument("--name", default=None, help="its leaderboard row and results folder")
    parser.add_argument(
        "--randomized", action="store_true", help="it is random by design: attack it with EOT"
    )
    parser.add_argument(
        "--normalize",
        metavar="MEAN,STD",
        default=None,
        help="the model expects standardized inputs: (x - MEAN) / STD inside it, per channel "
        "with ':' (0.4914:0.4822:0.4465,0.2470:0.2435:0.2616); attacks stay in [0, 1] pixels",
    )


def parse_eps(items: Sequence[str]) -> list[tuple[str | None, float]]:
    """`--eps 0.1,0.3 --eps l2:1,2` -> [(None, 0.1), (None, 0.3), ('l2', 1.0), ('l2', 2.0)]."""
    plan: list[tuple[str | None, float]] = []
    for item in items:
        scope, _, values = item.rpartition(":")
        if scope and scope not in THREAT_MODELS:
            raise RBError(
                f"--eps {item}: unknown threat model {scope!r}; known: {', '.join(THREAT_MODELS)}"
            )
        for text in values.split(","):
            try:
                plan.append((scope or None, float(text)))
            except ValueError:
                raise RBError(f"--eps {item}: {text!r} is not a number") from None
    return plan


def parse_value(text: str, default: Any) -> Any:
    """Parse a `--set` value, guided by the type of the hyper-parameter's default.

    A number where the default is a number must be finite (`inf`, `nan` and `none` are refused);
    `none` is taken only where the default itself is None or a string."""
    word = text.strip().lower()
    booleans = {"true": True, "yes": True, "false": False, "no": False}
    numeric = isinstance(default, int | float) and not isinstance(default, bool)
    if word in ("none", "null"):
        if numeric or isinstance(default, bool):
            raise RBError(f"expected a number, got {text!r}")
        return None
    if isinstance(default, bool):
        if word not in booleans:
            raise RBError(f"expected true or false, got {text!r}")
        return booleans[word]
    casters: tuple[Callable[[str], Any], ...]
    if isinstance(default, int):
        return _integer(text)
    if isinstance(default, float):
        casters = (float,)
    else:  # a string or None default: take the narrowest reading
        if word in booleans:
            return booleans[word]
        casters = (int, float, str)
    for cast in casters:
        try:
            value = cast(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise RBError(f"expected a finite number, got {text!r}")
        return value
    raise RBError(f"expected a number, got {text!r}")


INT64 = (-(2**63), 2**63 - 1)


def _integer(text: str) -> int:
    """An integer hyper-parameter: `12`, or `1e3` where it is a whole number, within int64."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise RBError(f"expected an integer, got {text!r}") from None
        if not math.isfinite(number) or not number.is_integer():
            raise RBError(f"expected an integer, got {text!r}") from None
        value = int(number)
    if not INT64[0] <= value <= INT64[1]:
        raise RBError(f"{text} is out of an integer's range ({INT64[0]} to {INT64[1]})")
    return value


def parse_normalize(text: str | None) -> tuple[list[float], list[float]] | None:
    """`--normalize MEAN,STD` (channels separated by ':') -> ([means], [stds]); None if not given."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 2:
        raise RBError(f"--normalize {text!r}: expected MEAN,STD (channels separated by ':')")
    try:
        mean, std = ([float(v) for v in part.split(":")] for part in parts)
    except ValueError:
        raise RBError(f"--normalize {text!r}: MEAN and STD must be numbers") from None
    return mean, std
