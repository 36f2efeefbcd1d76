"""The IDX format of MNIST and Fashion-MNIST (LeCun et al. 1998; Xiao et al. 2017): big-endian
header, unsigned bytes. Each file is verified by the SHA-256 of its *decompressed* bytes, so a
recompressed copy (Debian's is recompressed) still verifies; where only the published gzip's hash
is known, the compressed file is checked instead."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.api import DataSource
from robustbench_lite.data import Dataset, check_split
from robustbench_lite.datasets._common.files import fetch
from robustbench_lite.errors import RBError


class IDXSource(DataSource):
    """A dataset of 28x28 grayscale images in IDX files (`t10k-*` test, `train-*` train)."""

    #: SHA-256 of the decompressed IDX bytes, per file stem.
    raw_sha256: ClassVar[Mapping[str, str]] = {}
    #: SHA-256 of the published .gz, for a stem whose decompressed hash is not known.
    gz_sha256: ClassVar[Mapping[str, str]] = {}
    url: ClassVar[str]
    how_to_get: ClassVar[str]
    shape = (1, 28, 28)
    num_classes = 10

    def folders(self) -> Sequence[Path]:
        """Folders searched before the data folder."""
        return ()

    def load(self, split: str) -> Dataset:
        check_split(self, split)
        prefix = "t10k" if split == "test" else "train"
        images = self._array(f"{prefix}-images-idx3-ubyte")
        labels = self._array(f"{prefix}-labels-idx1-ubyte")
        if len(images) != len(labels):
            raise RBError(f"{self.name} {split}: {len(images)} images but {len(labels)} labels")
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
        return Dataset(self.name, split, x.contiguous(), y, self.num_classes)

    def _array(self, stem: str) -> np.ndarray:
        names = [stem + ".gz", stem] if stem not in self.gz_sha256 else [stem + ".gz"]
        path = fetch(
            self.name,
            names,
            url=self.url,
            dirs=self.folders(),
            check=lambda p: self._problem(stem, p),
            how_to_get=self.how_to_get,
        )
        return parse_idx(self._bytes(path), path)

    def _bytes(self, path: Path) -> bytes:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.name.endswith(".gz") else raw

    def _problem(self, stem: str, path: Path) -> str | None:
        """Why `path` is not the published file `stem` (None when it is)."""
        raw = path.read_bytes()
        if stem in self.gz_sha256:
            ok = hashlib.sha256(raw).hexdigest() == self.gz_sha256[stem]
            return None if ok else "checksum mismatch"
        if stem not in self.raw_sha256:
            return "no checksum known"
        try:
            data = gzip.decompress(raw) if _gzipped(path, raw) else raw
        except (OSError, EOFError) as exc:
            return f"cannot decompress it ({exc})"
        if hashlib.sha256(data).hexdigest() != self.raw_sha256[stem]:
            return "checksum mismatch"
        return None


def _gzipped(path: Path, raw: bytes) -> bool:
    return path.name.endswith(".gz") or (path.suffix == ".part" and raw[:2] == b"\x1f\x8b")


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    """IDX bytes (big-endian header, uint8 payload) -> an array of the header's shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise RBError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(data, dtype=np.uint8, offset=header)
    if payload.size != int(np.prod(shape)):
        raise RBError(f"{path}: header says {shape} but holds {payload.size} bytes")
    return payload.reshape(shape)
