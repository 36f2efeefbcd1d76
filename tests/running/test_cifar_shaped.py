"""A CIFAR-shaped user model, trained by the test on synthetic data: the CLI and `evaluate`
give identical per-sample arrays on the same data file, and a model with its standardization
inside gives the same arrays as the bare model behind `--normalize` / `normalize=`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file, save_model

import robustbench_lite
from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from tests._helpers import cifar_model
from tests._helpers.synthetic import SHAPES, synthetic

MODEL = Path(__file__).resolve().parents[1] / "_helpers" / "cifar_model.py"
ATTACKS = ["pgd", "square"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module]:
    """The synthetic CIFAR-shaped data as a --dataset file, and the trained model's weights."""
    folder = tmp_path_factory.mktemp("cifar")
    source = synthetic(*SHAPES[0])
    train, test = source.load("train"), source.load("test")
    data = folder / "synthetic.safetensors"
    save_file({"x": test.x, "y": test.y, "x_train": train.x, "y_train": train.y}, str(data))
    torch.manual_seed(0)
    model = cifar_model.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model((train.x - 0.45) / 0.25), train.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # It expects standardized inputs: the bare weights behind --normalize MEAN,STD.
    standardized = cifar_model.Standardized()
    standardized.model.load_state_dict(model.state_dict())
    weights = folder / "bare.safetensors"
    save_model(model, str(weights))
    return data, weights, standardized.eval()


def _samples(root: Path, dataset: str, name: str) -> dict[str, Any]:
    folder = next((root).glob(f"*/quick/{name}"))
    assert folder.parent.parent.name == dataset
    return {p.stem: json.loads(p.read_text())["samples"] for p in folder.glob("*.json")
            if p.stem != "diagnostics"}  # fmt: skip


@pytest.mark.bench
def test_cli_and_evaluate_agree_and_normalization_is_the_model_s_own(
    files: tuple[Path, Path, torch.nn.Module], tmp_path: Path
) -> None:
    data, weights, standardized = files
    norm = ",".join(":".join(str(v) for v in part) for part in (cifar_model.MEAN, cifar_model.STD))
    argv = ["-q", "run", "--model", f"{MODEL}:build", "--weights", str(weights), "--name", "cnn",
            "--normalize", norm, "--dataset", str(data), "-a", ",".join(ATTACKS),
            "--profile", "quick", "--n", "24", "--results", str(tmp_path / "cli")]  # fmt: skip
    assert main(argv) == 0
    bare = cifar_model.build()
    bare.load_state_dict(standardized.model.state_dict())
    bare.eval()
    normalize = (cifar_model.MEAN, cifar_model.STD)
    common = {"attacks": ATTACKS, "dataset": str(data), "profile": "quick", "n": 24}
    robustbench_lite.evaluate(
        bare, name="cnn", results=tmp_path / "py", normalize=normalize, **common
    )
    robustbench_lite.evaluate(standardized, name="cnn", results=tmp_path / "inside", **common)
    name = next((tmp_path / "cli").glob("*")).name
    assert name.startswith("synthetic-")
    cli = _samples(tmp_path / "cli", name, "cnn")
    assert set(cli) == {"pgd", "square"}
    assert cli == _samples(tmp_path / "py", name, "cnn")  # the CLI and Python: the same run
    assert cli == _samples(tmp_path / "inside", name, "cnn")  # --normalize is the model's own
    assert sum(cli["pgd"]["clean_correct"]) >= 12  # the model learned the synthetic classes


@pytest.mark.parametrize(
    ("value", "message"),
    [("0.5", "expected MEAN,STD"), ("0.5,0", "stds positive"), ("a,b", "must be numbers"),
     ("0.1:0.2,0.3", "one value per channel")],
)  # fmt: skip
def test_bad_normalization_is_one_line(
    files: tuple[Path, Path, torch.nn.Module], tmp_path: Path, capsys: Any, value: str, message: str
) -> None:
    data, weights, _ = files
    argv = ["run", "--model", f"{MODEL}:build", "--weights", str(weights), "--name", "cnn",
            "--normalize", value, "--dataset", str(data), "-a", "pgd",
            "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_robustbench_model_without_the_package_is_one_line(capsys: Any, tmp_path: Path) -> None:
    argv = ["run", "--model", "robustbench:Standard", "--name", "rb", "--dataset",
            "cifar10-samples", "-a", "pgd", "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the robustbench package is not installed" in err
    with pytest.raises(RBError, match="robustbench"):
        from robustbench_lite.running.own.model_files import robustbench_model

        robustbench_model("robustbench:Standard", "cifar10")
