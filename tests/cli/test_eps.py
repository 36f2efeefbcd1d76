"""eps as people write it (issue 39): `8/255`, `linf:8/255`, `l2:0.5,1`; a value that is the
data's default to the digits typed is the default cell, not an override column; an eps above 1
says what it would be in [0, 1]. And the reading commands: `rb diagnose` finds the profiles that
have results, `--help` shows defaults and cites only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from safetensors.torch import save_file

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.threat_models import THREAT_MODELS
from robustbench_lite.running.eps import (
    THREAT_MODEL_NAMES,
    Eps,
    eps_groups,
    parse_eps,
    parse_eps_spec,
)
from tests._helpers.synthetic import SHAPES, synthetic

ROOT = Path(__file__).resolve().parents[2]
CIFAR_DEFAULT = 8 / 255  # the Linf default on 3x32x32 data (running/own/data.py, cifar10)
QUICK = ["-q", "run", "-a", "pgd", "-d", "none", "--profile", "quick", "--n", "5"]


def test_eps_is_a_number_or_a_fraction() -> None:
    assert parse_eps("8/255") == 8 / 255
    assert parse_eps(" 0.0314 ") == 0.0314 and parse_eps("3e-2") == 0.03 and parse_eps(0.5) == 0.5
    for text, message in [
        ("abc", "'abc' is not a number"),
        ("8/0", "divides by zero"),
        ("8/x", "is not a number"),
        ("-1", "positive"),
        ("0", "positive"),
        ("nan", "positive"),
        ("inf", "positive"),
    ]:
        with pytest.raises(RBError, match=message):
            parse_eps(text)
    assert set(THREAT_MODEL_NAMES) == set(THREAT_MODELS)  # the scopes parsing knows are real


def test_spec_lists_mix_scopes_numbers_and_fractions() -> None:
    spec = parse_eps_spec(["0.1,8/255", "l2:0.5,1", "LINF:16/255"])
    assert [(e.threat_model, e.value) for e in spec] == [
        (None, 0.1),
        (None, 8 / 255),
        ("l2", 0.5),
        ("l2", 1.0),
        ("linf", 16 / 255),
    ]
    assert [e.value for e in parse_eps_spec(8 / 255)] == [8 / 255]  # Python's eps=8/255
    with pytest.raises(RBError, match="--eps l2:1,-1: l2 eps must be a positive number"):
        parse_eps_spec(["l2:1,-1"])
    with pytest.raises(RBError, match="unknown threat model 'lp'"):
        parse_eps_spec("lp:1")


@pytest.mark.parametrize(
    ("typed", "default", "is_default"),
    [
        ("0.0314", CIFAR_DEFAULT, True),  # 0.031372... rounded to 4 decimals
        ("0.031", CIFAR_DEFAULT, True),
        ("8/255", CIFAR_DEFAULT, True),  # a fraction: exactly
        ("0.0313725490196078", CIFAR_DEFAULT, True),
        ("0.0313", CIFAR_DEFAULT, False),  # 4 decimals typed, and the 4th is wrong
        ("0.032", CIFAR_DEFAULT, False),
        ("7/255", CIFAR_DEFAULT, False),
        ("0.3", 0.3, True),  # MNIST's Linf default
        ("0.30", 0.3, True),
        ("3/10", 0.3, True),
        ("0.31", 0.3, False),
        ("0.0314", 0.3, False),  # CIFAR's value is no default on MNIST
        ("1", 0.5, False),  # l2: 0.5 rounded to no decimals is 0 (half to even), not 1
    ],
)
def test_the_default_to_the_digits_typed_is_the_default(
    typed: str, default: float, is_default: bool
) -> None:
    assert Eps.of(typed).is_default(default) is is_default


def test_an_eps_that_is_the_default_runs_in_the_default_cell() -> None:
    """On CIFAR-shaped data: 8/255 and 0.0314 give Linf attacks their default cell (eps None),
    while an L2 attack in the same unscoped sweep keeps 0.0314 as an override."""
    source = synthetic(*SHAPES[0])
    assert source.default_eps("linf") == CIFAR_DEFAULT
    attacks = {"pgd": "linf", "pgd-l2": "l2"}
    for given in (["linf:8/255"], ["0.0314"], ["linf:0.031,8/255"], [0.0314]):
        groups = eps_groups(parse_eps_spec(given), attacks, source.default_eps)
        linf = [eps for eps, names in groups if "pgd" in names]
        assert linf == [None], (given, groups)
    assert eps_groups(parse_eps_spec("0.0314"), attacks, source.default_eps) == [
        (None, ["pgd"]),
        (0.0314, ["pgd-l2"]),
    ]
    assert eps_groups(parse_eps_spec("0.05"), {"pgd": "linf"}, source.default_eps) == [
        (0.05, ["pgd"])
    ]
    assert eps_groups([], attacks, source.default_eps) == [(None, ["pgd", "pgd-l2"])]
    with pytest.raises(RBError, match="no selected attack has the threat model"):
        eps_groups(parse_eps_spec("spatial:1"), attacks, source.default_eps)


def _cells(root: Path) -> list[str]:
    return sorted(p.stem for p in root.glob("*/quick/none/*.json") if p.stem != "diagnostics")


def test_cli_eps_as_typed_is_the_default_cell(tmp_path: Path) -> None:
    """`--eps linf:8/255` and `--eps 0.0314` on CIFAR-shaped data write `pgd.json`, as no
    `--eps` does; on MNIST `3/10` and `0.30` are its 0.3."""
    source = synthetic(*SHAPES[0])
    train, test = source.load("train"), source.load("test")
    data = tmp_path / "synthetic.safetensors"
    save_file({"x": test.x, "y": test.y, "x_train": train.x, "y_train": train.y}, str(data))
    argv = [*QUICK, "--dataset", str(data), "--results", str(tmp_path / "cifar")]
    assert main([*argv, "--eps", "linf:8/255", "--eps", "0.0314"]) == 0
    assert _cells(tmp_path / "cifar") == ["pgd"]
    assert main([*argv, "--eps", "0.05"]) == 0  # a real override keeps its own column
    assert _cells(tmp_path / "cifar") == ["pgd", "pgd@eps=0.05"]
    assert main([*QUICK, "--eps", "3/10,0.30", "--results", str(tmp_path / "mnist")]) == 0
    assert _cells(tmp_path / "mnist") == ["pgd"]


def test_an_eps_above_one_says_what_was_meant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*QUICK, "--eps", "8", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "rb: error: linf eps 8 is above 1 (images are in [0, 1]): did you mean 8/255 = 0.031?\n"
    )
    assert not any(tmp_path.iterdir())  # refused before any work


def test_diagnose_finds_the_profiles_with_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    results = str(tmp_path)
    assert main(["diagnose", "none", "--results", results]) == 2
    assert "no result files of defense 'none' in any profile" in capsys.readouterr().err
    assert main([*QUICK, "--results", results]) == 0
    capsys.readouterr()
    assert main(["diagnose", "none", "--results", results]) == 0  # quick's, found by itself
    out = capsys.readouterr().out
    assert out.startswith("== profile quick ==\nnone: 1 cells") and "white-box-only" in out
    assert main(["diagnose", "none", "--results", results, "--profile", "standard"]) == 2
    assert capsys.readouterr().err == (
        "rb: error: no results of none in standard; quick has results: "
        f"rb diagnose none --profile quick --results {results}\n"
    )


COMMANDS = ["list", "zoo", "run", "check", "plot", "diagnose", "leaderboard", "attacks", "site"]


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_shows_defaults_and_cites_files_that_exist(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = " ".join(_help(capsys, "run").split())  # unwrapped
    assert "quick, standard or paper (default: standard)" in run
    assert "results folder (default: results)" in run and "(default: mnist-5k)" in run
    assert "8/255" in run and "(default: True)" not in run  # a flag's default says nothing
    texts = [_help(capsys)] + [_help(capsys, command) for command in COMMANDS]
    cited = {m for text in texts for m in re.findall(r"[\w./-]+\.md\b", text)}
    assert cited and all((ROOT / path).is_file() for path in cited), cited
    assert "DESIGN" not in "".join(texts)
