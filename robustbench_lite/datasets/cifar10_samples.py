"""Dataset `cifar10-samples`: the 20 CIFAR-10 test images foolbox's wheel ships, as a test split
(no training split): to smoke-test a CIFAR-10 model offline, with no download."""

from __future__ import annotations

from typing import ClassVar

from robustbench_lite.api import TM
from robustbench_lite.datasets._common.samples import FoolboxSamples


class CIFAR10Samples(FoolboxSamples):
    """20 real CIFAR-10 test images, 3x32x32, 10 classes; CIFAR-10's budgets."""

    name = "cifar10-samples"
    prefix = "cifar10"
    shape = (3, 32, 32)
    num_classes = 10
    eps: ClassVar = {TM.LINF: 8 / 255, TM.L2: 0.5, TM.SPATIAL: 1.0}
    spatial = (30.0, 3.2, 3.2)
    origin = "the 20 CIFAR-10 test images in foolbox's wheel (test split only)"
