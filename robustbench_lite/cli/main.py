"""`rb`: the entry point and its dispatch, `rb run` and `rb check` (the commands that read
results are in reports.py).

User errors print one line on stderr and exit with code 2; an interrupted run (Ctrl-C: 130,
SIGTERM: 143) keeps every finished cell and shard; a closed pipe (`rb leaderboard | head`) ends
quietly with 141, as SIGPIPE would. This module imports no torch (nor pandas): each command
imports what it needs, so `rb --help` and a usage error answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from robustbench_lite.cli.parser import build_parser
from robustbench_lite.errors import RBError, debug, is_stop, one_line, stop_on_signals, stopped_by
from robustbench_lite.names import DEFAULT_DATASET
from robustbench_lite.text import printable

if TYPE_CHECKING:
    import pandas as pd

    from robustbench_lite.running.own.model import UserModel
    from robustbench_lite.running.request import RunRequest

log = logging.getLogger("robustbench_lite")
#: Exit code of a command whose reader closed the pipe: 128 + SIGPIPE, as if killed by it.
CLOSED_PIPE = 128 + int(getattr(signal, "SIGPIPE", 13))


def _user_models(args: argparse.Namespace) -> list[UserModel]:
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
            + (["--preprocess"] if args.preprocess is not None else [])
            + (["--bpda"] if args.bpda is not None else [])
        )
        if stray:
            raise RBError(f"{', '.join(stray)} given without --model")
        return []
    if not args.name:
        raise RBError("--model needs --name NAME (its row in the leaderboard)")
    from robustbench_lite.cli.values import parse_normalize
    from robustbench_lite.running.own.model_files import from_factory

    return [
        from_factory(
            args.model,
            name=args.name,
            weights=args.weights,
            randomized=args.randomized,
            normalize=parse_normalize(args.normalize),
            dataset=getattr(args, "dataset", DEFAULT_DATASET),
            preprocess=args.preprocess,
            bpda=args.bpda,
        )
    ]


def _cmd_run(args: argparse.Namespace) -> None:
    """`rb run`: the same request as `robustbench_lite.run()` / `evaluate()` (running/request.py),
    built from the options, checked before any work, then executed."""
    from robustbench_lite.cli import reports
    from robustbench_lite.cli.values import parse_settings
    from robustbench_lite.protocol.registry import attack_names, defense_names, resolve_names
    from robustbench_lite.running.request import RunRequest

    attacks = resolve_names(args.attack, attack_names(), "attack")
    models = _user_models(args)
    defenses = resolve_names(args.defense, defense_names(), "defense") if args.defense else []
    reports.check_output_file(args.csv)
    request = RunRequest.build(
        attacks=attacks,
        defenses=defenses,
        models=models,
        dataset=args.dataset,
        profile=args.profile,
        eps=args.eps,
        settings=parse_settings(args.settings, attacks + defenses),
        results=args.results,
        budget=args.budget,
        n=args.n,
        seed=args.seed,
        device=args.device,
        quiet=args.quiet,
        save_adv=args.save_adv,
        eot=args.eot,
        executor=args.executor,
        address=args.address,
        shard_size=args.shard_size,
        threads=args.threads,
        retrain=args.retrain,
    )
    if args.dry_run:
        from robustbench_lite.cli import run_view

        reports.write(run_view.preview(request.preview(), request.cell_dir))
        return
    _emit_run(request.execute(), request, args)


def _emit_run(board: pd.DataFrame, request: RunRequest, args: argparse.Namespace) -> None:
    """This run's rows (a user's model under the row its weights were given) and cells, fitted
    to the terminal; which cells were reused from where."""
    from robustbench_lite.cli import reports, run_view
    from robustbench_lite.report import tables
    from robustbench_lite.store.files import atomic_write_text

    defenses = [*request.defenses, *(m.name for m in request.models)]
    runs = request.runs
    cells = [c for runner, chosen in runs for c in run_view.columns(runner, chosen, defenses)]
    hint = (
        f"`rb leaderboard --results {args.results} --dataset {args.dataset} "
        f"--profile {args.profile} --wide` shows them"
    )
    reports.emit(run_view.view(board, defenses, cells), None, wide=args.wide, hint=hint)
    reports.write(run_view.report([runner for runner, _ in runs], request.cell_dir))
    if args.csv is not None:
        atomic_write_text(args.csv, tables.to_csv(board))


def _cmd_check(args: argparse.Namespace) -> int:
    from robustbench_lite.cli import reports
    from robustbench_lite.running.check.rerun import check

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
        from robustbench_lite.cli.terminal import SafeFormatter

        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # ours, not a test harness's
                handler.setFormatter(SafeFormatter("%(message)s"))
        threading.excepthook = _thread_failed
        try:
            code = _dispatch(args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        except BrokenPipeError:  # the reader went away (`rb leaderboard | head`): no error
            return _closed_pipe()
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
    from robustbench_lite.cli import reports

    if args.command == "list":
        from robustbench_lite.store.zoo import model_cards

        reports.write(model_cards() if args.models else reports.listing())
    elif args.command == "zoo":
        from robustbench_lite.running.grid.zoo_build import build_zoo
        from robustbench_lite.store.zoo import Zoo

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


def _closed_pipe() -> int:
    """stdout's reader is gone: point stdout at /dev/null, so that nothing more (the
    interpreter's own flush at exit included) fails on it, and exit as SIGPIPE would."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: no descriptor (a test's)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return CLOSED_PIPE


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
