"""The weights flags (`weights-not-shipped`, `other-zoo`): a row is compared with the zoo
installed with the package, whatever $RB_ZOO says, so a swapped or lost model cannot pass as the
shipped one. Apart from flags.py, whose other flags read only the cells' numbers."""

from __future__ import annotations

import functools
from collections import defaultdict

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import defense_class
from robustbench_lite.store.cell_record import CellRecord, given
from robustbench_lite.store.zoo import ZOO, Zoo

#: The zoo installed with the package, the reference of every row (its manifest read once).
INSTALLED_ZOO = Zoo(ZOO)


def unshipped(cells: list[CellRecord]) -> list[tuple[str, str]]:
    """Rows not on the installed zoo's weights (whatever $RB_ZOO says): a shipped defense on other
    weights (lost, retrained, a swapped zoo's), or any row on another zoo's files."""
    entries = INSTALLED_ZOO.entries().values()
    every = {entry.sha256 for entry in entries}
    # (defense, dataset, profile) -> hashes; a cell lacking one of them (None) matches no entry.
    shipped: dict[tuple[str | None, str | None, str | None], set[str]] = defaultdict(set)
    for entry in entries:
        shipped[entry.defense, entry.dataset, entry.profile].add(entry.sha256)
    found: dict[str, tuple[str, str]] = {}
    for cell in cells:
        hashes = shipped.get((trained_as(cell.defense), cell.dataset, cell.profile))
        weights = given(cell.weights_sha256)
        short = str(weights or "unrecorded")[:12]
        if hashes and weights not in hashes and "weights-not-shipped" not in found:
            found["weights-not-shipped"] = (
                "weights-not-shipped",
                f"{cell.cell} was computed on weights {short}; the zoo installed with the "
                f"package ships {', '.join(sorted(h[:12] for h in hashes))} for this defense",
            )
        zoo = given(cell.zoo_sha256)
        if zoo not in (None, "none") and weights not in every and "other-zoo" not in found:
            found["other-zoo"] = (
                "other-zoo",
                f"{cell.cell} loaded weights {short} from the zoo with manifest "
                f"{str(zoo)[:12]}, not the one installed with the package",
            )
    return list(found.values())


@functools.cache
def trained_as(defense: str) -> str:
    """The defense whose shipped weights a row carries (`weights_from`: bit-depth takes none's)."""
    try:
        return defense_class(defense).weights_from or defense
    except RBError:  # a user's model: its own
        return defense
