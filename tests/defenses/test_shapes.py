"""Every defense on other shapes than 28x28 digits (CIFAR's 3x32x32 with 10 classes, a
non-square 3x40x48 with 7): trained in its quick profile, classifying, with input gradients; a
defense that cannot serve the data says so (ABS: 1x28x28 only) and is skipped up front."""

from __future__ import annotations

from typing import Any

import pytest

from robustbench_lite.protocol.registry import defense_class, defense_names, instantiate
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.testing import check_defense
from tests._helpers.synthetic import SHAPES, synthetic

#: Defenses whose check on other shapes takes most of a minute (thermometer's training): checked
#: in `make bench`.
LONG = {"thermometer"}


#: ALP on the non-square shape (21 s); its CIFAR-shaped check and PGD-AT's on both stay in CI.
LONG_ON = {("alp", "synthetic-40x48")}


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        pytest.param(
            n,
            s,
            id=f"{n}-{s[0]}",
            marks=[pytest.mark.bench] if n in LONG or (n, s[0]) in LONG_ON else [],
        )
        for n in defense_names()
        for s in SHAPES
    ],
)
def test_every_defense_serves_any_shape_or_says_it_cannot(
    name: str, shape: Any, quick_runner: Runner
) -> None:
    source = synthetic(*shape)
    model = check_defense(
        defense_class(name), cache=quick_runner.cache, min_accuracy=0.3, dataset=source
    )
    reason = instantiate(defense_class(name), "quick").unsupported(source.shape, 7)
    assert (model is None) == (reason is not None)


def test_an_unfit_defense_is_skipped_with_one_line(
    quick_runner: Runner, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = synthetic(*SHAPES[0])
    runner = Runner(
        dataset=source, profile="quick", n=8, results_dir=tmp_path, quiet=True,
        cache=quick_runner.cache,
    )  # fmt: skip
    board = runner.run(["pgd"], ["abs", "none"])
    assert list(board["defense"]) == ["none"]
    assert "skipping abs on synthetic-32: ABS's decoders make 1x28x28 images only" in caplog.text
