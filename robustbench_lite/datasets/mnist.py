"""Dataset `mnist`: the official MNIST IDX files, 60,000 training and 10,000 test digits (LeCun
et al. 1998), from $RB_DATA_DIR/mnist or a download checked against the published hashes (the
library searches no folder outside itself: tests and the Makefile point $RB_DATA_DIR at a copy)."""

from __future__ import annotations

from typing import ClassVar

from robustbench_lite.api import TM
from robustbench_lite.datasets._common.idx import IDXSource


class MNIST(IDXSource):
    """MNIST digits, 1x28x28, 10 classes; Linf 0.3, L2 1.5 (Madry et al. 2018)."""

    name = "mnist"
    eps: ClassVar = {TM.LINF: 0.3, TM.L2: 1.5, TM.SPATIAL: 1.0}
    origin = "official IDX files: $RB_DATA_DIR/mnist, or a download"
    url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    how_to_get = "put the official IDX .gz files in $RB_DATA_DIR/mnist, or allow the download"
    raw_sha256: ClassVar = {
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    }
    # Only the published gzip's hash is known for this one: it is checked on the compressed file.
    gz_sha256: ClassVar = {
        "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    }
