"""Dataset `cifar10`: CIFAR-10 (Krizhevsky 2009), 50,000 training and 10,000 test colour images
of 10 classes, from the official binary archive, downloaded once into the data folder and checked
against its published MD5."""

from __future__ import annotations

from typing import ClassVar

from robustbench_lite.datasets._common.cifar import CIFARSource


class CIFAR10(CIFARSource):
    """CIFAR-10, 3x32x32, 10 classes; Linf 8/255, L2 0.5 (RobustBench's budgets)."""

    name = "cifar10"
    num_classes = 10
    origin = "the official cifar-10-binary.tar.gz (MD5-checked), in $RB_DATA_DIR/cifar10"
    archive = "cifar-10-binary.tar.gz"
    md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    members: ClassVar = {
        "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test": ["test_batch.bin"],
    }
