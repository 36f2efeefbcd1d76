"""`rb`: list plugins, run attacks x defenses, print leaderboards.

User errors print one line on stderr and exit with code 2; an interrupted run exits 130 and keeps
every finished cell.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from robustbench_lite import data, leaderboard
from robustbench_lite.errors import RBError
from robustbench_lite.plugins import (
    THREAT_MODELS,
    attack_class,
    attack_names,
    defense_class,
    defense_names,
    instantiate,
    parse_value,
)

log = logging.getLogger("robustbench_lite")


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


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rb", description="robustbench_lite: honest adversarial robustness.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="registered attacks and defenses")

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
    run.add_argument("--dataset", default="mnist-5k", help=f"one of {', '.join(data.DATASETS)}")
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
        "--reuse-models", action="store_true", help="use cached models instead of retraining"
    )
    check.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)

    plot = sub.add_parser("plot", help="eps sweep, query curves and example grids as PNG files")
    plot.add_argument("--results", type=Path, default=Path("results"))
    plot.add_argument("--dataset", default="mnist-5k")
    plot.add_argument("--profile", default="standard")

    diagnose = sub.add_parser("diagnose", help="explain the red flags of a defense's results")
    diagnose.add_argument("defense", help="the defense (a row of the leaderboard)")
    diagnose.add_argument("--results", type=Path, default=Path("results"))
    diagnose.add_argument("--dataset", default="mnist-5k")
    diagnose.add_argument("--profile", default="standard")

    board = sub.add_parser("leaderboard", help="the leaderboard of existing results")
    board.add_argument("--results", type=Path, default=Path("results"))
    board.add_argument("--dataset", default="mnist-5k")
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


def _user_models(args: argparse.Namespace) -> list[Any]:
    """[the model of `--model ... --name NAME`], checked as far as it can be without data; []."""
    if args.model is None:
        stray = [
            flag
            for flag, value in (("--weights", args.weights), ("--name", args.name))
            if value is not None
        ] + (["--randomized"] if args.randomized else [])
        if stray:
            raise RBError(f"{', '.join(stray)} given without --model")
        return []
    if not args.name:
        raise RBError("--model needs --name NAME (its row in the leaderboard)")
    from robustbench_lite.own_model import from_factory

    return [
        from_factory(args.model, name=args.name, weights=args.weights, randomized=args.randomized)
    ]


def _cmd_list() -> None:
    lines = []
    for name in attack_names():
        try:
            attack = instantiate(attack_class(name), "standard")
            lines.append(f"attack   {name:16} {attack.threat_model:8} {attack.knowledge}")
        except RBError as exc:
            lines.append(f"attack   {name:16} unavailable: {exc}")
    for name in defense_names():
        try:
            cls = defense_class(name)
            traits = [t for t in ("randomized", "certifies") if getattr(cls, t)]
            lines.append(f"defense  {name:16} {', '.join(traits) or 'deterministic'}")
        except RBError as exc:
            lines.append(f"defense  {name:16} unavailable: {exc}")
    sys.stdout.write("\n".join(lines) + "\n")


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


def _cmd_run(args: argparse.Namespace) -> None:
    from robustbench_lite.runner import Runner, resolve_names

    attacks = resolve_names(args.attack, attack_names(), "attack")
    models = _user_models(args)
    if not (args.defense or models):
        raise RBError("give --defense (-d) or --model (see `rb run --help`)")
    defenses = resolve_names(args.defense, defense_names(), "defense") if args.defense else []
    settings = parse_settings(args.settings, attacks + defenses)
    plan = parse_eps(args.eps) or [(None, None)]

    def runner(eps: float | None) -> Runner:
        return Runner(
            dataset=args.dataset,
            profile=args.profile,
            n=args.n,
            seed=args.seed,
            results_dir=args.results,
            eps=eps,
            budget=args.budget,
            settings=settings,
            quiet=args.quiet,
            save_adv=args.save_adv,
            eot=args.eot,
            device=args.device,
            executor=args.executor,
            address=args.address,
            shard_size=args.shard_size,
            threads=args.threads,
        )

    _check_output_file(args.csv)
    runs = []
    for scope, eps in plan:
        chosen = [
            a
            for a in attacks
            if scope is None
            or instantiate(attack_class(a), args.profile, settings.get(a)).threat_model == scope
        ]
        if chosen:
            runs.append((runner(eps), chosen))
    if not runs:
        raise RBError("no selected attack has the threat model of any --eps given")
    for one, chosen in runs:  # every eps of a sweep is checked before any work starts
        one.prepare(chosen, [*defenses, *models])
    for model in models:  # the pre-attack checks of a user's model (model_checks.py)
        model.run_checks(args.dataset)
    board = None
    for one, chosen in runs:
        board = one.run(chosen, [*defenses, *models])
    _emit_run(board, runs, [*defenses, *(m.name for m in models)], args)


def _check_output_file(path: Path | None) -> None:
    """An output file must not name a directory, and its folder must exist or be creatable."""
    if path is None:
        return
    if path.is_dir():
        raise RBError(f"--csv {path} is a directory; name a file")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise RBError(f"--csv {path}: {parent} is not a directory")


def _emit_run(
    board: Any, runs: list[tuple[Any, list[str]]], defenses: list[str], args: Any
) -> None:
    """This run's rows and cells, fitted to the terminal; which cells were reused from where."""
    from robustbench_lite import run_view

    cells = [c for runner, chosen in runs for c in run_view.columns(runner, chosen, defenses)]
    cell_dir = runs[0][0].cell_dir
    hint = (
        f"`rb leaderboard --results {args.results} --dataset {args.dataset} "
        f"--profile {args.profile} --wide` shows them"
    )
    _emit(run_view.view(board, defenses, cells), None, wide=args.wide, hint=hint)
    sys.stdout.write(run_view.report([runner for runner, _ in runs], cell_dir))
    if args.csv is not None:
        from robustbench_lite.cache import atomic_write_text

        atomic_write_text(args.csv, leaderboard.to_csv(board))


def _cmd_plot(args: argparse.Namespace) -> None:
    from robustbench_lite.plots import plot_all

    for path in plot_all(args.results / args.dataset / args.profile):
        sys.stdout.write(f"{path}\n")


def _cmd_check(args: argparse.Namespace) -> int:
    from robustbench_lite.check import check

    report = check(
        args.baseline,
        tolerance=args.tolerance,
        strict=args.strict,
        update=args.update,
        reuse_models=args.reuse_models,
        models=_user_models(args),
    )
    sys.stdout.write(report.render())
    return 1 if report.failed else 0


def _cmd_leaderboard(args: argparse.Namespace) -> None:
    cell_dir = args.results / args.dataset / args.profile
    if not cell_dir.is_dir():
        raise RBError(f"no results in {cell_dir}; run `rb run` first")
    _check_output_file(args.csv)
    board = leaderboard.build(cell_dir)
    _emit(board, args.csv, wide=args.wide)
    if args.readme is not None:
        leaderboard.update_readme(args.readme, board, cell_dir)


def _cmd_site(args: argparse.Namespace) -> None:
    from robustbench_lite.site import build

    sys.stdout.write(f"{build(args.results, args.out)}\n")


def _emit(board: Any, csv: Path | None, *, wide: bool = False, hint: str | None = None) -> None:
    """The leaderboard on stdout, fitted to the terminal (or every column as Markdown if `wide`);
    the whole of it into `csv` if given."""
    from robustbench_lite import terminal

    if wide:
        sys.stdout.write(leaderboard.to_markdown(board))
    else:
        sys.stdout.write(terminal.render(board, hint=hint or terminal.WIDE_HINT))
    if csv is not None:
        from robustbench_lite.cache import atomic_write_text

        atomic_write_text(csv, leaderboard.to_csv(board))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rb` console script; returns the exit code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = _parser().parse_args(argv)
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            format="%(message)s",
            stream=sys.stderr,
        )
        if args.command == "list":
            _cmd_list()
        elif args.command == "run":
            _cmd_run(args)
        elif args.command == "check":
            return _cmd_check(args)
        elif args.command == "plot":
            _cmd_plot(args)
        elif args.command == "diagnose":
            from robustbench_lite.flags import explain

            sys.stdout.write(explain(args.results / args.dataset / args.profile, args.defense))
        elif args.command == "site":
            _cmd_site(args)
        else:
            _cmd_leaderboard(args)
    except RBError as exc:
        sys.stderr.write(f"rb: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rb: interrupted; every finished cell is saved, rerun to resume\n")
        return 128 + _stopped_by[0]
    return 0


_stopped_by = [int(signal.SIGINT)]


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM ends a run as Ctrl-C does: finished cells kept, temporary folders removed."""
    _stopped_by[0] = signum
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
