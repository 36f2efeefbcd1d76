"""Dataset `cifar100`: CIFAR-100 (Krizhevsky 2009), 50,000 training and 10,000 test colour images
of 100 fine classes, from the official binary archive (each record: coarse label, fine label,
image), checked against its published MD5."""

from __future__ import annotations

from typing import ClassVar

from robustbench_lite.datasets._common.cifar import CIFARSource


class CIFAR100(CIFARSource):
    """CIFAR-100 (fine labels), 3x32x32, 100 classes; Linf 8/255, L2 0.5."""

    name = "cifar100"
    num_classes = 100
    origin = "the official cifar-100-binary.tar.gz (MD5-checked), in $RB_DATA_DIR/cifar100"
    archive = "cifar-100-binary.tar.gz"
    md5 = "03b5dce01913d631647c71ecec9e9cb8"
    members: ClassVar = {"train": ["train.bin"], "test": ["test.bin"]}
    label_bytes = 2
    label_at = 1  # the fine label
