"""Sampling error and paired comparisons: the Wilson score interval of an accuracy (Wilson 1927),
which stays inside [0, 1] and keeps its coverage near 0 and 1, where robust accuracies often
live; and which samples of one cell flipped between two runs, with an exact one-sided sign test
on the discordant samples (an exact McNemar test; McNemar 1947)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
#: Family-wise level of `rb check`'s paired test (Bonferroni over the cells compared).
LEVEL = 0.05


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson interval (lo, hi) of a proportion successes / n; (nan, nan) when n == 0."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Flips:
    """Per-sample changes of one cell between the baseline and the rerun."""

    cell: str
    n: int  # samples both runs saw
    fell: int  # robust in the baseline, broken now
    rose: int  # broken in the baseline, robust now

    @property
    def p_fall(self) -> float:
        """P(at least `fell` of the discordant samples fall | no change): exact binomial tail."""
        return sign_test(self.fell, self.fell + self.rose)


def sign_test(k: int, m: int) -> float:
    """One-sided exact sign test: P(X >= k) for X ~ Binomial(m, 1/2); 1.0 when m == 0."""
    if m == 0 or k <= 0:
        return 1.0
    return sum(math.comb(m, i) for i in range(k, m + 1)) / 2.0**m


def flips(cell: str, before: Mapping[int, bool], after: Mapping[int, bool]) -> Flips:
    """Compare a per-sample flag (robust, clean-correct; by sample index) before and after."""
    common = sorted(set(before) & set(after))
    fell = sum(bool(before[i]) and not bool(after[i]) for i in common)
    rose = sum(not bool(before[i]) and bool(after[i]) for i in common)
    return Flips(cell, len(common), fell, rose)


def smallest_detectable_fall(n_cells: int, level: float = LEVEL) -> int:
    """Falls needed (with no rises) for a significant result at `level` over `n_cells` cells."""
    threshold = level / max(1, n_cells)
    k = 1
    while sign_test(k, k) >= threshold:
        k += 1
    return k
