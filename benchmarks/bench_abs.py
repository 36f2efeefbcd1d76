"""ABS inference throughput, batched vs a per-image, per-class loop, and a PGD-40 evaluation.

Both inference variants run side by side in one process on 2 threads with the paper's inference
hyper-parameters (8000 candidate latents per class, 50 Adam steps); the PGD-40 evaluation uses the
standard-profile `abs` model from the runner's model cache (trained there first if missing).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.common import PROFILE, size
from benchmarks.common import model as trained
from robustbench_lite.defenses.abs_model import ABSModel, reference_logits
from robustbench_lite.protocol.registry import load_dataset
from robustbench_lite.running.grid.runner import Runner

BATCHED_IMAGES = size(32, 2)
LOOPED_IMAGES = size(2, 1)
PGD_IMAGES = size(100, 4)


def _rate(fn: Callable[[], object], images: int) -> float:
    start = time.perf_counter()
    fn()
    return images / (time.perf_counter() - start)


def throughput(model: ABSModel, x: torch.Tensor) -> None:
    """Images per second of the batched inference and of the per-image, per-class loop."""
    with torch.no_grad():
        model(x[:2])  # warm-up
        batched = _rate(lambda: model(x[:BATCHED_IMAGES]), BATCHED_IMAGES)
    looped = _rate(lambda: reference_logits(model, x[:LOOPED_IMAGES]), LOOPED_IMAGES)
    threads = torch.get_num_threads()
    print(
        f"ABS inference ({threads} threads, {len(model.candidates)} candidates, {model.steps} steps)"
    )
    print(f"  batched          {batched:8.2f} images/s  ({BATCHED_IMAGES} images)")
    print(f"  per-image loop   {looped:8.2f} images/s  ({LOOPED_IMAGES} images)")
    print(f"  speed-up         {batched / looped:8.1f}x")


def pgd_evaluation() -> None:
    """Wall time of the runner's PGD-40 (linf 0.3) cell of `abs` on PGD_IMAGES test images."""
    with tempfile.TemporaryDirectory() as results:
        pgd = Runner(
            profile=PROFILE,
            n=PGD_IMAGES,
            results_dir=Path(results),
            quiet=True,
            settings={"pgd": {"steps": size(40, 2), "restarts": 1}},  # PGD-40: one run of 40 steps
        )
        start = time.perf_counter()
        pgd.run(["pgd"], ["abs"])
        wall = time.perf_counter() - start
        record = json.loads(next(Path(results).glob("*/*/abs/pgd*.json")).read_text())
    print(
        f"PGD-40 (linf 0.3) on {PGD_IMAGES} images: {wall:.0f} s wall, "
        f"clean {record['clean_acc']:.3f}, robust {record['robust_acc']:.3f}"
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    model = trained("abs")
    assert isinstance(model, ABSModel)
    throughput(model, load_dataset("mnist-5k", "test").x)
    pgd_evaluation()


if __name__ == "__main__":
    main()
