"""`rb` starts fast and ends quietly: `--help` and a usage error import no torch (the work's
modules are imported by the commands that need them), and a closed pipe (`rb leaderboard |
head`) ends the command without a word, exit 141 (128 + SIGPIPE, as a signal's exit reads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from robustbench_lite.cli.main import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "pandas", "matplotlib") if m in sys.modules)
print(code, ",".join(heavy) or "-")
"""


def _probe(argv: list[str]) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    code, heavy = done.stdout.split()[-2:]
    return f"{code} {heavy}", done.stderr


def test_help_and_usage_errors_import_no_torch() -> None:
    assert _probe(["--help"])[0] == "0 -"
    assert _probe(["run", "--help"])[0] == "0 -"
    result, err = _probe(["run"])  # no --attack: argparse's error, one line
    assert result == "2 -" and err.count("\n") == 1 and "--attack" in err


def test_importing_the_package_and_the_cli_imports_no_torch() -> None:
    code = (
        "import sys, robustbench_lite, robustbench_lite.cli.main; "
        "print('torch' in sys.modules, 'pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_a_closed_pipe_ends_quietly() -> None:
    board = ROOT / "results" / "mnist-5k" / "quick"
    argv = [sys.executable, "-m", "robustbench_lite.cli", "leaderboard", "--wide",
            "--results", str(ROOT / "results"), "--profile", "quick"]  # fmt: skip
    assert (board / "leaderboard.csv").is_file()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before rb writes a line (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""  # not "plugin or model code raised BrokenPipeError", no traceback
