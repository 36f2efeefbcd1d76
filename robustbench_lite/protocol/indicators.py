"""Indicators of attack failure read from the query stream (Pintor et al. 2022, "Indicators of
attack failure: debugging and improving optimization of adversarial examples"): every row an
attack queries passes through the runner, so what the attack did is known without its word.

Per sample of a cell, from the margin (best other class minus the true one: positive once
misclassified) of every row the model answered, as the attack saw it (the EOT average for a
randomized defense), the runner records:
- `silent_success`: a queried point inside the threat model was misclassified, yet the point the
  attack returned is not adversarial: the attack found an adversarial example and lost it;
- `incomplete`: the sample held, and its best margin was still improving over the last 10% of
  its queries: more iterations would have helped;
- `non_converging`: the sample held, and no query ever improved on its clean margin.
A sample that was broken, or was never queried, gets no `incomplete` or `non_converging`; a
threat model that is not a pixel ball (spatial) gets no `silent_success`; minimal attacks (whose
margins hover at the decision boundary by design) get only `silent_success`. None marks "not
applicable"; the worst case never counts a queried point, only the verified returned one.

`incomplete` and `non_converging` read only rows inside the sample's threat model (its ball,
where it is one) and the [0, 1] box: one query far outside (`1 - x`) would otherwise lift the
running best margin at once and launder both. Each sample's count of rows outside is kept
(`outside`), so a cell shows its share of out-of-ball queries; a sample that held and was
queried only outside never improved inside: non-converging.
"""

from __future__ import annotations

import threading

import torch

from robustbench_lite.protocol.losses import margin_loss
from robustbench_lite.protocol.threat_models import NormBall, ThreatModel

#: Of a sample's queries, the last share in which a rising best margin means "incomplete".
TAIL = 0.1
KINDS = ("silent_success", "incomplete", "non_converging")


class QueryStream:
    """What the rows of one batch showed: per row its sample, margin, and whether it was a
    misclassified point inside the threat model. Fed by the oracle, thread-safe."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, threat_model: ThreatModel | None, eps: float
    ) -> None:
        self.x, self.y, self.eps = x, y, eps
        self.ball = threat_model if isinstance(threat_model, NormBall) else None
        self._lock = threading.Lock()
        self._idx: list[torch.Tensor] = []
        self._margin: list[torch.Tensor] = []
        self._inside_hit: list[torch.Tensor] = []
        self._inside: list[torch.Tensor] = []

    def record(self, rows: torch.Tensor, idx: torch.Tensor, out: torch.Tensor) -> None:
        """One answered call: its rows (inputs), whose samples they are, and the model's output."""
        with torch.no_grad():
            where = idx.to(self.y.device)
            margin = margin_loss(out.detach().float(), self.y[where]).cpu()
            flat = rows.detach().flatten(1)
            inside = (flat.amin(1) >= 0) & (flat.amax(1) <= 1)
            if self.ball is not None:
                inside &= self.ball.distance(self.x[where], rows.detach()) <= self.eps * (1 + 1e-6)
            inside = inside.cpu()
            hit = inside & (margin > 0) if self.ball is not None else torch.zeros_like(inside)
        with self._lock:
            self._idx.append(idx.cpu())
            self._margin.append(margin)
            self._inside_hit.append(hit)
            self._inside.append(inside)

    def outside(self, n: int) -> torch.Tensor:
        """Per sample of the batch, how many answered rows lay outside its threat model or the
        [0, 1] box (int64, on the CPU)."""
        if not self._idx:
            return torch.zeros(n, dtype=torch.int64)
        idx, inside = torch.cat(self._idx), torch.cat(self._inside)
        return torch.bincount(idx[~inside], minlength=n).to(torch.int64)

    def indicators(
        self, robust: torch.Tensor, clean_margin: torch.Tensor, *, minimal: bool
    ) -> dict[str, list[bool | None]]:
        """Per sample of the batch, each indicator (None where it does not apply)."""
        n = len(self.y)
        out: dict[str, list[bool | None]] = {kind: [None] * n for kind in KINDS}
        if not self._idx:
            return out
        idx = torch.cat(self._idx)
        margin = torch.cat(self._margin)
        hit = torch.cat(self._inside_hit)
        inside = torch.cat(self._inside)
        order = torch.argsort(idx, stable=True)  # by sample, each in query order
        groups = torch.split(order, torch.bincount(idx, minlength=n).tolist())
        for i, mine in enumerate(groups):
            if len(mine) == 0:
                continue
            held = bool(robust[i])
            if self.ball is not None:
                out["silent_success"][i] = held and bool(hit[mine].any())
            if minimal or not held:
                continue
            mine = mine[inside[mine]]  # what the attack learned inside its threat model
            if len(mine) == 0:  # queried only outside: it never improved inside the ball
                out["incomplete"][i], out["non_converging"][i] = False, True
                continue
            best = margin[mine].cummax(0).values
            if len(best) == 1:  # one query (a transfer attack's): nothing to improve or converge
                out["incomplete"][i] = False
                continue
            cut = min(len(best) - 1, max(0, int(len(best) * (1 - TAIL)) - 1))
            out["incomplete"][i] = bool(best[-1] > best[cut])
            out["non_converging"][i] = bool(best[-1] <= clean_margin[i])
        return out


def shares(values: dict[str, list[bool | None]]) -> dict[str, float | None]:
    """Each indicator's share of the samples it applies to (None where it applies to none)."""
    result: dict[str, float | None] = {}
    for kind, column in values.items():
        known = [v for v in column if v is not None]
        result[kind] = (sum(known) / len(known)) if known else None
    return result
