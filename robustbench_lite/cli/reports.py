"""`rb`'s commands that read results and write to the terminal: the listing, leaderboards, the
attack ranking, plots and the site; and the one way text reaches stdout (control characters
stripped)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from robustbench_lite.cli import terminal
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import (
    DEFAULT_DATASET,
    attack_class,
    attack_names,
    dataset_class,
    dataset_names,
    defense_class,
    defense_names,
    instantiate,
)
from robustbench_lite.report import leaderboard, ranking, tables
from robustbench_lite.report.diagnose import explain, profiles_with
from robustbench_lite.report.plots import plot_all
from robustbench_lite.report.site.build import build as build_site
from robustbench_lite.store.files import atomic_write_text
from robustbench_lite.store.layout import GridLayout
from robustbench_lite.text import printable


def write(text: str) -> None:
    """Text for the terminal on stdout, control characters (ANSI escapes...) stripped."""
    sys.stdout.write(printable(text, keep_newlines=True))


def grid(args: argparse.Namespace) -> Path:
    """The grid folder a command's --results, --dataset and --profile name."""
    return GridLayout.of(args.results, args.dataset, args.profile).path


def existing_grid(args: argparse.Namespace) -> Path:
    """The grid folder a command reads, which must hold results."""
    cell_dir = grid(args)
    if not cell_dir.is_dir():
        raise RBError(f"no results in {cell_dir}; run `rb run` first")
    return cell_dir


def emit(board: Any, csv: Path | None, *, wide: bool = False, hint: str | None = None) -> None:
    """The leaderboard on stdout, fitted to the terminal (or every column as Markdown if `wide`);
    the whole of it into `csv` if given."""
    if wide:
        write(tables.to_markdown(board))
    else:
        write(terminal.render(board, hint=hint or terminal.WIDE_HINT))
    if csv is not None:
        atomic_write_text(csv, tables.to_csv(board))


def check_output_file(path: Path | None) -> None:
    """An output file must not name a directory, and its folder must exist or be creatable."""
    if path is None:
        return
    if path.is_dir():
        raise RBError(f"--csv {path} is a directory; name a file")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise RBError(f"--csv {path}: {parent} is not a directory")


def listing() -> str:
    """`rb list`: every registered attack, defense and dataset, one line each (a plugin that
    fails to load says so on its line instead of vanishing)."""
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
    for name in dataset_names():
        try:
            source = dataset_class(name)
            shape = "x".join(map(str, source.shape))
            splits = "+".join(source.splits)
            lines.append(f"dataset  {name:16} {shape:9} {source.num_classes:>4} classes  {splits}")
        except RBError as exc:
            lines.append(f"dataset  {name:16} unavailable: {exc}")
    return "\n".join(lines) + "\n"


def cmd_plot(args: argparse.Namespace) -> None:
    for path in plot_all(grid(args)):
        write(f"{path}\n")


def cmd_site(args: argparse.Namespace) -> None:
    write(f"{build_site(args.results, args.out)}\n")


def cmd_diagnose(args: argparse.Namespace) -> None:
    """`rb diagnose DEFENSE`: the flags of its results in `--profile`, or in every profile that
    has results of it; where the profile asked for has none, which ones do."""
    found = profiles_with(args.results, args.dataset, args.defense)
    if args.profile is None and not found:
        raise RBError(
            f"no result files of defense {args.defense!r} in any profile of "
            f"{Path(args.results, args.dataset)}; run `rb run` first"
        )
    if args.profile is not None and args.profile not in found and found:
        where = "".join(
            f" --{key} {value}"
            for key, value, default in [
                ("results", args.results, Path("results")),
                ("dataset", args.dataset, DEFAULT_DATASET),
            ]
            if value != default
        )
        raise RBError(
            f"no results of {args.defense} in {args.profile}; {', '.join(found)} "
            f"{'has' if len(found) == 1 else 'have'} results: "
            f"rb diagnose {args.defense} --profile {found[0]}{where}"
        )
    profiles = [args.profile] if args.profile is not None else found
    for profile in profiles:
        if args.profile is None:
            write(f"== profile {profile} ==\n")
        write(explain(GridLayout.of(args.results, args.dataset, profile).path, args.defense))


def cmd_leaderboard(args: argparse.Namespace) -> None:
    cell_dir = existing_grid(args)
    check_output_file(args.csv)
    board = leaderboard.build(cell_dir)
    emit(board, args.csv, wide=args.wide)
    if args.readme is not None:
        tables.update_readme(args.readme, board, cell_dir)
    if args.write:  # the tables a run writes beside its cells, and nothing else
        tables.save_grid(board, cell_dir)


def cmd_attacks(args: argparse.Namespace) -> None:
    cell_dir = existing_grid(args)
    frame = ranking.table(cell_dir)
    ranking.save(cell_dir)
    shown = frame if args.wide else ranking.scores(frame)
    emit(shown, None, wide=args.wide, hint="`rb attacks --wide` shows every model")
    if not args.wide:
        write(textwrap.fill(ranking.SAME_ROWS, terminal.terminal_width()) + "\n")
    write(f"(attacks.csv in {cell_dir})\n")
