"""Train examples/my_model.py for a few seconds on mnist-5k's training split and save its weights
as safetensors beside it (examples/my_model.safetensors), ready for

    rb run --model examples/my_model.py:build --weights examples/my_model.safetensors \\
        --name my-model -a pgd,square --eps linf:0.3 --profile quick --results examples/results

(its results go to examples/results/, never to the committed results/).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch
from safetensors.torch import save_model
from torch.nn import functional as F

from robustbench_lite.protocol.registry import load_dataset

HERE = Path(__file__).resolve().parent


def _build() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("my_model", HERE / "my_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "my_model.safetensors")
    args = parser.parse_args()

    torch.manual_seed(0)
    train = load_dataset("mnist-5k", "train")  # images (N, 1, 28, 28) in [0, 1], labels (N,)
    model = _build()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        order = torch.randperm(len(train))
        for i in range(0, len(order), 64):
            batch = order[i : i + 64]
            loss = F.cross_entropy(model(train.x[batch]), train.y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")  # noqa: T201
    model.eval()
    test = load_dataset("mnist-5k", "test")
    with torch.no_grad():
        acc = (model(test.x).argmax(dim=1) == test.y).float().mean().item()
    save_model(model, str(args.out))
    print(f"trained in {time.perf_counter() - start:.1f} s, accuracy {acc:.3f}: {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
