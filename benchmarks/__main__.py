"""Run every benchmarks/bench_*.py module's main(), or those named on the command line."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import time

import benchmarks as package


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    wanted = [f"bench_{a.removeprefix('bench_')}" for a in argv] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(
            f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr
        )
        return 2
    for name in wanted:
        start = time.perf_counter()
        print(f"\n== {name}")
        importlib.import_module(f"benchmarks.{name}").main()
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
