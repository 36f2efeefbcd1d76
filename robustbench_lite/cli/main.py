"""`rb`: the entry point and its dispatch, `rb run` and `rb check` (the commands that read
results are in reports.py).

User errors print one line on stderr and exit with code 2; an interrupted run (Ctrl-C: 130,
SIGTERM: 143) keeps every finished cell and shard.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from robustbench_lite.cli import reports, run_view, terminal
from robustbench_lite.cli.parser import build_parser
from robustbench_lite.cli.values import parse_normalize, parse_settings
from robustbench_lite.errors import RBError, debug, is_stop, one_line, stop_on_signals, stopped_by
from robustbench_lite.protocol.registry import (
    DEFAULT_DATASET,
    attack_class,
    attack_names,
    defense_names,
    instantiate,
    resolve_names,
)
from robustbench_lite.report import tables
from robustbench_lite.running.check import check
from robustbench_lite.running.eps import eps_groups, parse_eps_spec
from robustbench_lite.running.model_files import from_factory
from robustbench_lite.running.own_data import resolve_source
from robustbench_lite.running.runner import Runner
from robustbench_lite.running.zoo_build import build_zoo
from robustbench_lite.store.files import atomic_write_text
from robustbench_lite.store.zoo import Zoo, model_cards
from robustbench_lite.text import printable

log = logging.getLogger("robustbench_lite")


def _user_models(args: argparse.Namespace) -> list[Any]:
    """[the model of `--model ... --name NAME`], checked as far as it can be without data; []."""
    if args.model is None:
        stray = (
            [
                flag
                for flag, value in (("--weights", args.weights), ("--name", args.name))
                if value is not None
            ]
            + (["--randomized"] if args.randomized else [])
            + (["--normalize"] if args.normalize is not None else [])
        )
        if stray:
            raise RBError(f"{', '.join(stray)} given without --model")
        return []
    if not args.name:
        raise RBError("--model needs --name NAME (its row in the leaderboard)")
    return [
        from_factory(
            args.model,
            name=args.name,
            weights=args.weights,
            randomized=args.randomized,
            normalize=parse_normalize(args.normalize),
            dataset=getattr(args, "dataset", DEFAULT_DATASET),
        )
    ]


def _cmd_run(args: argparse.Namespace) -> None:
    attacks = resolve_names(args.attack, attack_names(), "attack")
    models = _user_models(args)
    if not (args.defense or models):
        raise RBError("give --defense (-d) or --model (see `rb run --help`)")
    defenses = resolve_names(args.defense, defense_names(), "defense") if args.defense else []
    settings = parse_settings(args.settings, attacks + defenses)
    spec = parse_eps_spec(args.eps)
    source = resolve_source(args.dataset)  # once: every runner of an eps sweep shares it

    def runner(eps: float | None) -> Runner:
        return Runner(
            dataset=source,
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
            retrain=args.retrain,
        )

    reports.check_output_file(args.csv)
    threat_models = {
        a: str(instantiate(attack_class(a), args.profile, settings.get(a)).threat_model)
        for a in attacks
    }  # an eps equal to an attack's default (8/255, 0.0314 for 8/255) is its default cell
    runs = [
        (runner(eps), chosen) for eps, chosen in eps_groups(spec, threat_models, source.default_eps)
    ]
    for one, chosen in runs:  # every eps of a sweep is checked before any work starts
        one.prepare(chosen, [*defenses, *models])
    for model in models:  # the pre-attack checks of a user's model (protocol/checks.py)
        model.run_checks(source)
    board = None
    for one, chosen in runs:
        board = one.run(chosen, [*defenses, *models])
    _emit_run(board, runs, [*defenses, *(m.name for m in models)], args)


def _emit_run(
    board: Any, runs: list[tuple[Any, list[str]]], defenses: list[str], args: Any
) -> None:
    """This run's rows and cells, fitted to the terminal; which cells were reused from where."""
    cells = [c for runner, chosen in runs for c in run_view.columns(runner, chosen, defenses)]
    cell_dir = runs[0][0].cell_dir
    hint = (
        f"`rb leaderboard --results {args.results} --dataset {args.dataset} "
        f"--profile {args.profile} --wide` shows them"
    )
    reports.emit(run_view.view(board, defenses, cells), None, wide=args.wide, hint=hint)
    reports.write(run_view.report([runner for runner, _ in runs], cell_dir))
    if args.csv is not None:
        atomic_write_text(args.csv, tables.to_csv(board))


def _cmd_check(args: argparse.Namespace) -> int:
    report = check(
        args.baseline,
        tolerance=args.tolerance,
        strict=args.strict,
        update=args.update,
        reuse_models=args.reuse_models,
        models=_user_models(args),
        attacks=args.attack,
        defenses=args.defense,
        retrain=args.retrain,
    )
    reports.write(report.render())
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rb` console script; returns the exit code."""
    with stop_on_signals():
        try:
            args = build_parser().parse_args(argv)  # --help exits 0 here, and only here
        except RBError as exc:
            _error(str(exc))
            return 2
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            format="%(message)s",
            stream=sys.stderr,
        )
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # ours, not a test harness's
                handler.setFormatter(terminal.SafeFormatter("%(message)s"))
        threading.excepthook = _thread_failed
        try:
            code = _dispatch(args)
        except RBError as exc:
            _error(str(exc))
            return 2
        except BaseException as exc:  # plugin or model code outside any guard: one line, exit 2
            if is_stop(exc):
                sys.stderr.write("rb: interrupted; every finished cell is saved, rerun to resume\n")
                return 128 + (stopped_by() or signal.SIGINT)
            if debug():
                raise
            _error(f"plugin or model code raised {one_line(exc)}")
            return 2
        finally:
            threading.excepthook = threading.__excepthook__
    if _thread_errors:
        _error(f"plugin code raised {_thread_errors[0]}")
        return 2
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        reports.write(model_cards() if args.models else reports.listing())
    elif args.command == "zoo":
        entries = build_zoo(
            args.profile or ["quick", "standard"], args.defense or ["all"], dataset=args.dataset
        )
        reports.write(f"zoo: {len(entries)} models in {Zoo().folder}\n")
    elif args.command == "run":
        _cmd_run(args)
    elif args.command == "check":
        return _cmd_check(args)
    elif args.command == "plot":
        reports.cmd_plot(args)
    elif args.command == "diagnose":
        reports.cmd_diagnose(args)
    elif args.command == "attacks":
        reports.cmd_attacks(args)
    elif args.command == "site":
        reports.cmd_site(args)
    else:
        reports.cmd_leaderboard(args)
    return 0


def _error(message: str) -> None:
    """One line on stderr, control characters stripped."""
    sys.stderr.write(f"rb: error: {printable(message)}\n")


_thread_errors: list[str] = []


def _thread_failed(args: threading.ExceptHookArgs) -> None:
    """An exception in a thread that plugin code started: one line, and the run exits 2."""
    text = one_line(args.exc_value) if args.exc_value is not None else str(args.exc_type)
    _thread_errors.append(f"{text} in thread {args.thread.name if args.thread else '?'}")
    _error(f"plugin code raised {_thread_errors[-1]}")


if __name__ == "__main__":
    sys.exit(main())
