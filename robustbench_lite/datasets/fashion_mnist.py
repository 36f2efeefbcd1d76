"""Dataset `fashion-mnist`: Zalando's 28x28 clothing images (Xiao et al. 2017), 60,000 training
and 10,000 test, from Debian's `dataset-fashion-mnist`, $RB_DATA_DIR/fashion-mnist, or a
download checked against the published hashes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from robustbench_lite.api import TM
from robustbench_lite.datasets._common.idx import IDXSource


class FashionMNIST(IDXSource):
    """Fashion-MNIST, 1x28x28, 10 classes; Linf 0.1, L2 1.5."""

    name = "fashion-mnist"
    eps: ClassVar = {TM.LINF: 0.1, TM.L2: 1.5, TM.SPATIAL: 1.0}
    origin = "IDX files: Debian's dataset-fashion-mnist, $RB_DATA_DIR/fashion-mnist, a download"
    url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    how_to_get = (
        "`apt-get install dataset-fashion-mnist`, or put the IDX .gz files in "
        "$RB_DATA_DIR/fashion-mnist, or allow the download"
    )
    raw_sha256: ClassVar = {
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    }

    def folders(self) -> Sequence[Path]:
        return [Path("/usr/share/datasets/fashion-mnist")]
