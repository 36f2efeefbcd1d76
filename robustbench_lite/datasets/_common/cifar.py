"""The CIFAR binary archives (Krizhevsky 2009): the official `*-binary.tar.gz`, raw bytes, not the
pickled Python version (unpickling runs code). Each record is its label byte(s) then 3,072 bytes
of a 32x32 image, channel by channel (R, G, B), row-major. The archive is verified against its
published MD5 and read member by member straight from the tar (nothing is extracted to disk)."""

from __future__ import annotations

import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.api import TM, DataSource
from robustbench_lite.data import Dataset, check_split
from robustbench_lite.datasets._common.files import digest, fetch
from robustbench_lite.errors import RBError

PIXELS = 3 * 32 * 32


class CIFARSource(DataSource):
    """A CIFAR binary archive: its file, checksum, members per split and label layout."""

    shape = (3, 32, 32)
    #: RobustBench's CIFAR budgets (Croce et al. 2021): Linf 8/255, L2 0.5; spatial: +-30
    #: degrees and +-10% of the side (3.2 px).
    eps: ClassVar = {TM.LINF: 8 / 255, TM.L2: 0.5, TM.SPATIAL: 1.0}
    spatial = (30.0, 3.2, 3.2)
    url: ClassVar[str] = "https://www.cs.toronto.edu/~kriz/"
    archive: ClassVar[str]
    md5: ClassVar[str]  # as published beside the archive
    members: ClassVar[Mapping[str, Sequence[str]]]  # split -> member file names in the tar
    label_bytes: ClassVar[int] = 1  # bytes before each image
    label_at: ClassVar[int] = 0  # which of them is the label

    @property
    def how_to_get(self) -> str:
        return (
            f"put the official {self.archive} (MD5 {self.md5}) in $RB_DATA_DIR/{self.name}, or "
            "allow the download"
        )

    def load(self, split: str) -> Dataset:
        check_split(self, split)
        path = fetch(
            self.name,
            [self.archive],
            url=self.url,
            dirs=(),
            check=self._problem,
            how_to_get=self.how_to_get,
        )
        images, labels = [], []
        with tarfile.open(path, "r:gz") as tar:
            by_name = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for member in self.members[split]:
                if member not in by_name:
                    raise RBError(f"{path}: the archive has no {member}; is it {self.archive}?")
                handle = tar.extractfile(by_name[member])
                assert handle is not None
                member_x, member_y = self._records(handle.read(), path, member)
                images.append(member_x)
                labels.append(member_y)
        x = torch.from_numpy(np.concatenate(images).astype(np.float32) / 255.0)
        y = torch.from_numpy(np.concatenate(labels).astype(np.int64))
        return Dataset(self.name, split, x.contiguous(), y, self.num_classes)

    def _records(self, raw: bytes, path: Path, member: str) -> tuple[np.ndarray, np.ndarray]:
        size = self.label_bytes + PIXELS
        if len(raw) % size:
            raise RBError(f"{path}: {member} is not a whole number of {size}-byte records")
        table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
        labels = table[:, self.label_at]
        if int(labels.max(initial=0)) >= self.num_classes:
            raise RBError(f"{path}: {member} holds a label >= {self.num_classes}")
        return table[:, self.label_bytes :].reshape(-1, *self.shape), labels

    def _problem(self, path: Path) -> str | None:
        return None if digest(path, "md5") == self.md5 else "checksum mismatch"
