"""Dataset `imagenet-samples`: the 20 ImageNet validation images foolbox's wheel ships, resized
to 224x224 as foolbox does, as a test split (no training split): to smoke-test an ImageNet model
offline."""

from __future__ import annotations

from typing import ClassVar

from robustbench_lite.api import TM
from robustbench_lite.datasets._common.samples import FoolboxSamples


class ImageNetSamples(FoolboxSamples):
    """20 real ImageNet images, 3x224x224, 1000 classes; RobustBench's ImageNet Linf 4/255."""

    name = "imagenet-samples"
    prefix = "imagenet"
    shape = (3, 224, 224)
    num_classes = 1000
    eps: ClassVar = {TM.LINF: 4 / 255, TM.L2: 3.0, TM.SPATIAL: 1.0}
    spatial = (30.0, 22.4, 22.4)
    origin = "the 20 ImageNet images in foolbox's wheel, resized to 224x224 (test split only)"
