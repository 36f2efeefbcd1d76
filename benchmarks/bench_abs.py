"""ABS (Schott et al. 2019) on one thread: its decoders' throughput against the core's dense matrix
product, and the time per query and image of the reference and the fast latent search.

Every ABS query reruns a latent search (best of the stored candidates, then Adam steps through ten
decoders), so the decoders' forward and backward passes are nearly all of its time. In one run on
the same model and digits: GMAC/s of a dense 1024x1024 matmul; of the ten decoders' forward and
forward + latent-gradient passes, reference (`ABSModel.decode_reference`, PyTorch's grouped
transposed convolutions) and fast (`abs_decoder.FastDecoder`), at the latent search's batch sizes;
then a whole query per image, reference and fast, with their largest logit difference and label
agreement, and the per-image, per-class loop of `abs_reference`. Last, a PGD-40 cell's wall time.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import PROFILE, size, table, timed
from benchmarks.common import model as trained
from robustbench_lite.defenses.abs_model import ABSModel
from robustbench_lite.defenses.abs_reference import reference_logits
from robustbench_lite.protocol.registry import load_dataset
from robustbench_lite.running.grid.runner import Runner

#: Images per latent-search call (the search decodes 10 classes per image; 128 is its chunk).
BATCHES = (8, 32, 128) if PROFILE == "standard" else (2,)
QUERY_IMAGES = size(16, 2)
LOOPED_IMAGES = size(1, 0)  # seconds per image even in the quick profile: not in a smoke run
PGD_IMAGES = size(100, 2)


def decoder_macs(decoder: nn.Sequential) -> int:
    """Multiply-accumulates of one forward pass of all the grouped decoders, per latent row (that
    is, per image: every class's decoder once)."""
    macs, h = 0, 1
    for layer in decoder:
        if isinstance(layer, nn.ConvTranspose2d):
            k, s = layer.kernel_size[0], layer.stride[0]
            macs += h * h * layer.in_channels * layer.out_channels // layer.groups * k * k
            h = (h - 1) * s + k
    return macs


def matmul_rate() -> float:
    """GMAC/s of a dense 1024x1024 float32 matrix product."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    _, seconds = timed(lambda: a @ b, 5)
    return 1024**3 / seconds / 1e9


def _forward_backward(decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> None:
    """One decode and the gradient to the latents (what each Adam step of the search does)."""
    z = z.clone().requires_grad_(True)
    torch.autograd.grad(decode(z).square().sum(), z)


def decoder_rates(model: ABSModel) -> list[tuple[str, ...]]:
    """GMAC/s of the decoders' forward and forward + backward (to the latents), both paths."""
    macs = decoder_macs(model.decoder)
    rows = []
    for batch in BATCHES:
        z = torch.randn(batch, model.num_classes, model.latent_dim)
        row = [str(batch)]
        for decode in (model.decode_reference, model.decoder_fn()):
            with torch.no_grad():
                _, forward = timed(partial(decode, z))
            _, backward = timed(partial(_forward_backward, decode, z))
            row += [
                f"{batch * macs / forward / 1e9:.1f}",
                f"{2 * batch * macs / backward / 1e9:.1f}",
            ]
        rows.append(tuple(row))
    return rows


def queries(model: ABSModel, x: torch.Tensor) -> list[tuple[str, ...]]:
    """Seconds per query and image, reference and fast, and their decoders' GMAC/s."""
    macs = decoder_macs(model.decoder) * (2 * model.steps + 1)  # steps x (fwd + bwd), final fwd
    rows, logits = [], {}
    for fast in (False, True):
        model.fast = fast
        with torch.no_grad():
            model(x[:1])  # warm-up
            logits[fast], seconds = timed(lambda: model(x))
        per_image = seconds / len(x)
        name = "fast" if fast else "reference"
        rows.append((name, f"{per_image:.3f}", f"{macs / per_image / 1e9:.1f}"))
    model.fast = True
    if LOOPED_IMAGES:
        _, looped = timed(lambda: reference_logits(model, x[:LOOPED_IMAGES]), 1)
        rows.append(("per-image loop", f"{looped / LOOPED_IMAGES:.3f}", ""))
    diff = (logits[True] - logits[False]).abs().max() / logits[False].abs().max()
    same = int((logits[True].argmax(1) == logits[False].argmax(1)).sum())
    print(f"  fast vs reference: max |logit diff| / max |logit| {float(diff):.1e}, ", end="")
    print(f"same label on {same}/{len(x)} digits")
    return rows


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
    torch.set_num_threads(1)
    model = trained("abs")
    assert isinstance(model, ABSModel)
    x = load_dataset("mnist-5k", "test").x[:QUERY_IMAGES]
    print(
        f"ABS, 1 thread, {len(model.candidates)} candidates, {model.steps} steps; "
        f"dense 1024x1024 matmul {matmul_rate():.1f} GMAC/s"
    )
    header = ("images", "ref fwd", "ref fwd+bwd", "fast fwd", "fast fwd+bwd")
    print("decoders, GMAC/s (10 classes per image)")
    table([header, *decoder_rates(model)])
    print(f"a query ({QUERY_IMAGES} digits in one call)")
    table([("path", "s / image", "decoder GMAC/s"), *queries(model, x)])
    pgd_evaluation()


if __name__ == "__main__":
    main()
