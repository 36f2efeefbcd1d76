"""`rb`'s command line: the argument parser (option values are parsed in values.py). User errors
are one line (RBError), never argparse's usage dump."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from robustbench_lite.errors import RBError
from robustbench_lite.names import DEFAULT_DATASET  # not the registry's: no torch


class _Help(argparse.HelpFormatter):
    """`--help` shows each option's default where it has one worth saying (not None or [], not
    a flag's) and its help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        quiet = (
            action.nargs == 0 or default is None or default is argparse.SUPPRESS or default == []
        )
        if quiet or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and `--help` shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise RBError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rb",
        description="robustbench_lite: honest adversarial robustness.",
        epilog="Docs: docs/index.md in the repository, or `mkdocs serve` there.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = sub.add_parser("list", help="registered attacks, defenses and datasets")
    listing.add_argument(
        "--models", action="store_true", help="the model zoo's cards instead (the shipped weights)"
    )

    zoo = sub.add_parser(
        "zoo", help="rebuild the model zoo from the model cache (training what it lacks)"
    )
    zoo.add_argument(
        "--profile", action="append", default=[], help="quick, standard (repeat; default: both)"
    )
    zoo.add_argument("--defense", "-d", action="append", default=[], help="default: all")
    zoo.add_argument("--dataset", default=DEFAULT_DATASET, help="a registered dataset")

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
    run.add_argument(
        "--n", type=int, default=None, help="number of test samples (default: the profile's)"
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the data order and attacks")
    run.add_argument(
        "--eps",
        action="append",
        default=[],
        metavar="[TM:]E1,E2,...",
        help="perturbation budget(s), a number or a fraction (0.031 or 8/255), a sweep if "
        "several; TM (linf, l2, spatial) limits them to that threat model's attacks; the "
        "dataset's budget to the digits typed (0.0314 for 8/255) is its default cell "
        "(default: the dataset's budget; docs/datasets.md)",
    )
    run.add_argument(
        "--budget",
        type=int,
        default=None,
        help="per-sample query budget of score/label-based attacks (default: the profile's)",
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
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="list the cells it would compute and why (new, stale), and do nothing",
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
    _grid_arguments(plot)

    diagnose = sub.add_parser("diagnose", help="explain the red flags of a defense's results")
    diagnose.add_argument("defense", help="the defense (a row of the leaderboard)")
    _grid_arguments(diagnose, profile=None)

    board = sub.add_parser("leaderboard", help="the leaderboard of existing results")
    _grid_arguments(board)
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
    board.add_argument(
        "--write",
        action="store_true",
        help="also rewrite the grid's own tables (the leaderboard and attack CSV and Markdown "
        "files a run writes) from its cells, after copying cells in from another machine",
    )

    attacks = sub.add_parser("attacks", help="the attack leaderboard: attacks ranked per grid")
    _grid_arguments(attacks)
    attacks.add_argument("--wide", action="store_true", help="every row and model, as Markdown")

    site = sub.add_parser("site", help="a static leaderboard website from the result files")
    site.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    site.add_argument("--out", type=Path, default=Path("site"), help="where to write the site")
    return parser


def _grid_arguments(parser: argparse.ArgumentParser, profile: str | None = "standard") -> None:
    """`--results`, `--dataset`, `--profile`: the grid of results a reading command reads
    (`profile=None`: every profile that has results, `rb diagnose`)."""
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="the dataset's results")
    parser.add_argument(
        "--profile",
        default=profile,
        help="quick, standard or paper"
        + ("" if profile else " (default: every profile with results of the defense)"),
    )


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """`--model`, `--weights`, `--name`, `--randomized`: a user's own model
    (running/own/model.py)."""
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
    parser.add_argument(
        "--preprocess",
        metavar="PACKAGE.MODULE:FUNCTION",
        default=None,
        help="a non-differentiable step in front of the model (tensor -> tensor): answers use "
        "it as is, white-box attacks differentiate through --bpda (BPDA), plain @no-bpda beside",
    )
    parser.add_argument(
        "--bpda",
        metavar="PACKAGE.MODULE:FUNCTION",
        default=None,
        help="the differentiable approximation of --preprocess for BPDA (default: the identity)",
    )
