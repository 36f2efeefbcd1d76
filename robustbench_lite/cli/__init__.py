"""`rb`, the command line: its parser, its commands, and how their output fits a terminal."""

from robustbench_lite.cli.main import main

__all__ = ["main"]
