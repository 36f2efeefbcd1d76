"""The reviewer's list of bad input: each a one-line error and exit 2 before any work, plus
SIGTERM, file modes and the recorded thread count."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.store.records import versions

RUN = ["run", "-a", "pgd,pgd-l2", "-d", "none", "--profile", "quick", "--n", "10", "-q"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--results", "afile"], "results folder afile is not a directory"),
        (["--csv", "adir"], "--csv adir is a directory; name a file"),
        (["--eps", "linf:0.1", "--eps", "l2:1,-1"], "l2 eps must be a positive number"),
        (
            ["--eps", "0.1,2"],
            "linf eps 2 is above 1 (images are in [0, 1]): did you mean 2/255 = 0.008?",
        ),
        (["--set", "steps=inf"], "expected an integer, got 'inf'"),
        (["--set", "steps=none"], "expected a number, got 'none'"),
        (["--set", "pgd.rel_step_size=inf"], "expected a finite number"),
        (["--set", "pgd.rel_step_size=nan"], "expected a finite number"),
        (["--preprocess", "torch:round"], "--preprocess given without --model"),
        (
            ["-d", "none,bit-depth", "--set", "none.width=64"],
            "bit-depth runs on none's shipped weights: drop --set none.*",
        ),
        (
            ["--model", "robustbench_lite.defenses:mnist_cnn", "--name", "m", "--bpda", "a:b"],
            "--bpda approximates a --preprocess step; give the step too",
        ),
        (
            ["--model", "robustbench_lite.defenses:mnist_cnn", "--name", "m", "--preprocess", "x"],
            "--preprocess 'x': expected PACKAGE.MODULE:FUNCTION or path/file.py:FUNCTION",
        ),
        (
            [
                "--model",
                "robustbench_lite.defenses:mnist_cnn",
                "--name",
                "m",
                "--preprocess",
                "torch:nope",
            ],
            "--preprocess torch:nope: torch has no callable 'nope'",
        ),
    ],
)
def test_bad_input_fails_before_any_work(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    code = main([*RUN, "--results", "out", *extra])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert out == "" and not list(tmp_path.glob("out/*/*/*/*.json"))  # nothing computed


def test_rb_home_that_is_not_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").write_text("")
    monkeypatch.setenv("RB_HOME", str(tmp_path / "home"))
    code = main([*RUN, "--results", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "RB_HOME" in err and "is not a directory" in err


def test_leaderboard_csv_naming_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        ["leaderboard", "--results", "results", "--profile", "quick", "--csv", str(tmp_path)]
    )
    assert code == 2 and "is a directory" in capsys.readouterr().err


def test_files_follow_the_users_umask(tmp_path: Path, rb_home: Path) -> None:
    old = os.umask(0o022)
    try:
        assert main([*RUN, "--results", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    written = list(tmp_path.glob("mnist-5k/quick/**/*.json")) + list(rb_home.glob("models/*"))
    assert written
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o644)}


def test_versions_record_the_thread_count() -> None:
    import torch

    assert versions()["torch_threads"] == torch.get_num_threads()


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "RB_HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    baseline = Path("results/mnist-5k/quick/leaderboard.csv").resolve()
    process = subprocess.Popen(
        [sys.executable, "-m", "robustbench_lite.cli", "-q", "check", "--baseline", str(baseline)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any((tmp_path / "tmp").glob("rb-check-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any((tmp_path / "tmp").glob("rb-check-*")), "rb check never started its work"
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == [
        "rb: interrupted; every finished cell is saved, rerun to resume"
    ]
    assert not list((tmp_path / "tmp").iterdir())  # the temporary folder is gone


@pytest.mark.bench
def test_sigterm_stops_a_ray_run_cleanly_too(tmp_path: Path, rb_home: Path) -> None:
    """Ray installs its own SIGTERM handler (exit 1); rb keeps its own: exit 143, shards kept."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    env = {**os.environ, "RB_HOME": str(rb_home)}
    command = [
        sys.executable,
        "-m",
        "robustbench_lite.cli",
        "-q",
        "run",
        "-a",
        "pgd,square,boundary",
    ]
    command += ["-d", "none", "--profile", "quick", "--executor", "ray", "--results", str(tmp_path)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    # Its diagnostics are the first task back from Ray; the three cells' shards are still running.
    started = tmp_path / "mnist-5k" / "quick" / "none" / "diagnostics.json"
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert started.exists(), "the run never reached its cells"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == (
        "rb: interrupted; every finished cell is saved, rerun to resume"
    )
