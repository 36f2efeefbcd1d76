"""Datasets as plugins: shapes, ranges, the fixed mnist-5k split, checksums, the CIFAR binary
archives fetched from a local server, foolbox's sample images, and a user's own files; every
failure one clear line."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from robustbench_lite import data
from robustbench_lite.cli.main import main
from robustbench_lite.datasets.cifar10 import CIFAR10
from robustbench_lite.datasets.cifar100 import CIFAR100
from robustbench_lite.errors import RBError
from robustbench_lite.home import data_dir
from robustbench_lite.protocol.registry import data_source, dataset_names, load_dataset
from robustbench_lite.running.own.data import from_path, from_tensors, resolve_source

#: The MNIST test split: $RB_DATA_DIR/mnist (tests/conftest.py sets it to ../shared/data where
#: the checkout has that folder beside it).
SHARED_MNIST = data_dir() / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
IN_CI = os.environ.get("CI") == "true"
needs_shared = pytest.mark.skipif(
    not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"the MNIST test split is not in $RB_DATA_DIR/mnist ({SHARED_MNIST})",
)


def _check_images(ds: data.Dataset, n: int) -> None:
    assert ds.x.shape == (n, 1, 28, 28)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert set(ds.y.tolist()) == set(range(10))


def test_the_registry_lists_the_datasets_with_their_shapes() -> None:
    assert {"mnist-5k", "mnist", "fashion-mnist", "cifar10", "cifar100", "cifar10-samples"} <= set(
        dataset_names()
    )
    cifar = data_source("cifar10")
    assert (cifar.shape, cifar.num_classes) == ((3, 32, 32), 10)
    assert cifar.default_eps("linf") == pytest.approx(8 / 255) and cifar.default_eps("l2") == 0.5
    assert data_source("mnist-5k").default_eps("linf") == 0.3
    assert data_source("fashion-mnist").default_eps("linf") == 0.1
    assert cifar.threat_model("spatial").limits(1.0) == {"angle": 30.0, "dx": 3.2, "dy": 3.2}


def test_mnist5k_split_is_fixed_and_stratified() -> None:
    train, test = load_dataset("mnist-5k", "train"), load_dataset("mnist-5k", "test")
    _check_images(train, 4000)
    _check_images(test, 1000)
    assert torch.bincount(train.y).tolist() == [400] * 10
    assert torch.bincount(test.y).tolist() == [100] * 10
    # No digit is in both splits, and the split does not move between calls.
    train_rows = {bytes(row.numpy()) for row in (train.x * 255).round().to(torch.uint8)}
    test_rows = [bytes(row.numpy()) for row in (test.x * 255).round().to(torch.uint8)]
    assert sum(row in train_rows for row in test_rows) <= 2  # mnist has a few exact duplicates
    assert torch.equal(load_dataset("mnist-5k", "test").x, test.x)
    # Any prefix is close to balanced, so `--n 200` sees every class.
    assert torch.bincount(test.y[:200], minlength=10).min() >= 10


@needs_shared
def test_mnist_test_split_verifies_from_shared() -> None:
    ds = load_dataset("mnist", "test")
    _check_images(ds, 10_000)
    assert ds.y[:5].tolist() == [7, 2, 1, 0, 4]


def test_mnist_train_split_missing_offline_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path))
    with pytest.raises(RBError) as err:
        load_dataset("mnist", "train")
    message = str(err.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message
    assert "RB_DATA_DIR" in message  # says how to get it


@needs_shared
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
        load_dataset("mnist", "test")


@needs_shared
def test_recompressed_copy_still_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "mnist"
    target.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress((SHARED_MNIST / f"{name}.gz").read_bytes())
        (target / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path))
    assert len(load_dataset("mnist", "test")) == 10_000


def test_fashion_mnist_from_debian_package() -> None:
    if not FASHION.is_dir():
        if IN_CI:
            pytest.fail("CI installs dataset-fashion-mnist; it is missing")
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    _check_images(train, 60_000)
    _check_images(test, 10_000)


@pytest.mark.parametrize(("name", "split"), [("cifar11", "test"), ("mnist-5k", "val")])
def test_unknown_names_list_the_known_ones(name: str, split: str) -> None:
    with pytest.raises(RBError, match="known:"):
        resolve_source(name).load(split)


# -- CIFAR: the official binary archives, from a server on 127.0.0.1 ------------------------


def _archive(folder: Path, source: type, per_member: int, corrupt: bool = False) -> Path:
    """A small archive in the official binary format (records: label byte(s), 3072 pixels)."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    top = source.archive.split(".")[0]
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for members in source.members.values():
            for member in members:
                labels = rng.integers(0, source.num_classes, (per_member, source.label_bytes))
                pixels = rng.integers(0, 256, (per_member, 3072))
                raw = np.concatenate([labels, pixels], axis=1).astype(np.uint8).tobytes()
                info = tarfile.TarInfo(f"{top}/{member}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    blob = bytearray(buffer.getvalue())
    if corrupt:
        blob[len(blob) // 2] ^= 0xFF
    path = folder / source.archive
    path.write_bytes(bytes(blob))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 over a folder the test fills."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("source", [CIFAR10, CIFAR100])
def test_cifar_is_downloaded_once_verified_and_read_from_its_binary_archive(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: type
) -> None:
    url, served = server
    archive = _archive(served, source, per_member=7)
    monkeypatch.setattr(source, "md5", hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RB_DATA_MIRROR", url)
    monkeypatch.delenv("RB_OFFLINE", raising=False)
    test = source().load("test")
    assert test.x.shape == (7, 3, 32, 32) and test.x.dtype == torch.float32
    assert float(test.x.min()) >= 0.0 and float(test.x.max()) <= 1.0
    assert int(test.y.max()) < source.num_classes
    train = source().load("train")
    assert len(train) == 7 * len(source.members["train"])
    kept = tmp_path / "data" / source.name / source.archive
    assert kept.read_bytes() == archive.read_bytes()  # downloaded once, kept
    archive.unlink()  # the server has nothing now: the kept copy serves
    assert torch.equal(source().load("test").x, test.x)


def test_a_corrupted_cifar_download_is_refused_and_not_kept(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = server
    good = _archive(served, CIFAR10, per_member=3)
    monkeypatch.setattr(CIFAR10, "md5", hashlib.md5(good.read_bytes()).hexdigest())
    _archive(served, CIFAR10, per_member=3, corrupt=True)
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RB_DATA_MIRROR", url)
    monkeypatch.delenv("RB_OFFLINE", raising=False)
    with pytest.raises(RBError, match=r"cifar10: downloaded .*cifar-10-binary.tar.gz, checksum"):
        CIFAR10().load("test")
    assert not list((tmp_path / "data" / "cifar10").glob("*"))
    (tmp_path / "data" / "cifar10" / CIFAR10.archive).write_bytes(b"not the archive")
    with pytest.raises(RBError, match=r"checksum mismatch for .*cifar-10-binary\.tar\.gz"):
        CIFAR10().load("test")


def test_cifar_with_no_file_and_no_network_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RB_DATA_DIR", str(tmp_path / "data"))
    argv = ["run", "-a", "pgd", "-d", "none", "--dataset", "cifar10", "--results", str(tmp_path)]
    assert main(argv) == 2  # RB_OFFLINE=1 (conftest): no download is tried
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar-10-binary.tar.gz" in err and "RB_DATA_DIR" in err
    assert not (tmp_path / "cifar10").exists()


def test_foolbox_ships_twenty_real_cifar10_test_images() -> None:
    test = load_dataset("cifar10-samples", "test")
    assert test.x.shape == (20, 3, 32, 32) and test.y.tolist()[:3] == [3, 8, 8]
    assert 0.0 <= float(test.x.min()) < 0.2 and float(test.x.max()) > 0.8
    with pytest.raises(RBError, match="has no train split"):
        load_dataset("cifar10-samples", "train")


# -- a user's own data ----------------------------------------------------------------------


def test_own_data_from_npz_safetensors_and_an_image_folder(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (12, 3, 8, 10), dtype=np.uint8)
    y = np.arange(12) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    save_file({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, str(tmp_path / "d.safetensors"))
    for k in range(3):
        (tmp_path / "folder" / f"class{k}").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(x[i].transpose(1, 2, 0)).save(
            tmp_path / "folder" / f"class{y[i]}" / f"{i}.png"
        )
    sources = [from_path(tmp_path / name) for name in ("d.npz", "d.safetensors", "folder")]
    for source in sources:
        test = source.load("test")
        assert source.shape == (3, 8, 10) and source.num_classes == 3 and len(test) == 12
        assert source.splits == ("test",) and source.default_eps("linf") == pytest.approx(8 / 255)
    a, b = sources[0].load("test"), sources[1].load("test")
    assert torch.equal(a.x, b.x) and torch.equal(a.x, torch.from_numpy(x).float() / 255)
    assert sources[0].name.startswith("d-") and sources[0].name != sources[2].name
    assert from_tensors(torch.from_numpy(x), torch.from_numpy(y)).shape == (3, 8, 10)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((4, 28, 28), np.float32), "y": np.zeros(4, np.int64)},
            "must be (N, C, H, W)",
        ),
        ({"x": np.full((4, 1, 8, 8), 2.0, np.float32), "y": np.zeros(4)}, "must lie in [0, 1]"),
        (
            {"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.array([0, 1, -1, 1])},
            "labels must lie",
        ),
        (
            {"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.zeros(3, np.int64)},
            "y must be 4 labels",
        ),
        ({"x": np.zeros((4, 1, 8, 8), np.float32)}, "it must hold `x` and `y`"),
        (
            {"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.array([0.5, 1, 0, 1])},
            "integer labels",
        ),
    ],
)
def test_bad_own_data_is_one_line_and_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: dict, message: str
) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    argv = ["run", "-a", "pgd", "-d", "none", "--dataset", str(tmp_path / "bad.npz"),
            "--results", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_a_pickle_in_an_npz_is_not_read(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", x=np.array([object()], dtype=object), y=np.zeros(1))
    with pytest.raises(RBError, match="without pickles"):
        from_path(tmp_path / "p.npz").load("test")
