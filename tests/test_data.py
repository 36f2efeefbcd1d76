"""Datasets: shapes, ranges, the fixed mnist-5k split, checksums and clear errors."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from robustbench_lite import data
from robustbench_lite.errors import RBError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
IN_CI = os.environ.get("CI") == "true"


def _check_images(ds: data.Dataset, n: int) -> None:
    assert ds.x.shape == (n, 1, 28, 28)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert set(ds.y.tolist()) == set(range(10))


def test_mnist5k_split_is_fixed_and_stratified() -> None:
    train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
    _check_images(train, 4000)
    _check_images(test, 1000)
    assert torch.bincount(train.y).tolist() == [400] * 10
    assert torch.bincount(test.y).tolist() == [100] * 10
    # No digit is in both splits, and the split does not move between calls.
    train_rows = {bytes(row.numpy()) for row in (train.x * 255).round().to(torch.uint8)}
    test_rows = [bytes(row.numpy()) for row in (test.x * 255).round().to(torch.uint8)]
    assert sum(row in train_rows for row in test_rows) <= 2  # mnist has a few exact duplicates
    assert torch.equal(data.load("mnist-5k", "test").x, test.x)
    # Any prefix is close to balanced, so `--n 200` sees every class.
    assert torch.bincount(test.y[:200], minlength=10).min() >= 10


def test_mnist_test_split_verifies_from_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    if not SHARED_MNIST.is_dir():
        pytest.fail(f"{SHARED_MNIST} is missing: the MNIST test split is expected beside the repo")
    ds = data.load("mnist", "test")
    _check_images(ds, 10_000)
    assert ds.y[:5].tolist() == [7, 2, 1, 0, 4]


def test_mnist_train_split_missing_offline_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path))
    with pytest.raises(RBError) as err:
        data.load("mnist", "train")
    message = str(err.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message
    assert "RB_DATA_DIR" in message  # says how to get it


def test_corrupt_file_fails_its_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "mnist"
    target.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED_MNIST / name, target / name)
    raw = bytearray(gzip.decompress((target / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one flipped label
    (target / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path))
    with pytest.raises(RBError, match=r"checksum mismatch for .*t10k-labels-idx1-ubyte\.gz"):
        data.load("mnist", "test")


def test_recompressed_copy_still_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "mnist"
    target.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress((SHARED_MNIST / f"{name}.gz").read_bytes())
        (target / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path))
    assert len(data.load("mnist", "test")) == 10_000


def test_fashion_mnist_from_debian_package() -> None:
    if not FASHION.is_dir():
        if IN_CI:
            pytest.fail("CI installs dataset-fashion-mnist; it is missing")
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    train, test = data.load("fashion-mnist", "train"), data.load("fashion-mnist", "test")
    _check_images(train, 60_000)
    _check_images(test, 10_000)


@pytest.mark.parametrize(("name", "split"), [("cifar10", "test"), ("mnist-5k", "val")])
def test_unknown_names_list_the_known_ones(name: str, split: str) -> None:
    with pytest.raises(RBError, match="known:"):
        data.load(name, split)
