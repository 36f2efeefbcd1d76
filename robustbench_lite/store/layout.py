"""The results folder, owned here and nowhere else: every path of a grid is made by `GridLayout`.

<results>/<dataset>/<profile>/                 a grid
  leaderboard.csv  leaderboard.md  plots/
  <defense>/<cell>.json                        one attack cell
  <defense>/<cell>.adv.safetensors             its verified adversarial inputs (--save-adv)
  <defense>/certified[@eps=<e>].json           a certifying defense's certificates
  <defense>/diagnostics.json                   the model's diagnostics
  <defense>/.shards/<cell>/<k>.json            finished shards of a cell in flight
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robustbench_lite.errors import RBError

NO_EOT = "@no-eot"  # the cell-name suffix of a randomized defense attacked without EOT
CERTIFICATE = "certified"
DIAGNOSTICS = "diagnostics"
LEADERBOARD = "leaderboard"
#: A cell's name: its attack's, then `@key=value` markers (eps, budget, hyper-parameters).
_CELL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@=-]{0,199}")


@dataclass(frozen=True)
class GridLayout:
    """One dataset/profile folder of results."""

    path: Path

    @classmethod
    def of(cls, results: Path, dataset: str, profile: str) -> GridLayout:
        return cls(Path(results) / dataset / profile)

    def defense_dir(self, defense: str) -> Path:
        return self._inside(self.path / _checked(defense))

    def cell(self, defense: str, cell: str) -> Path:
        """`<defense>/<cell>.json`."""
        return self._inside(self.defense_dir(defense) / f"{_checked(cell)}.json")

    def diagnostics(self, defense: str) -> Path:
        return self.defense_dir(defense) / f"{DIAGNOSTICS}.json"

    def certificate(self, defense: str, suffix: str = "") -> Path:
        """`<defense>/certified<suffix>.json` (suffix '' or `@eps=<e>`)."""
        return self.cell(defense, CERTIFICATE + suffix)

    @property
    def leaderboard_csv(self) -> Path:
        return self.path / f"{LEADERBOARD}.csv"

    @property
    def leaderboard_md(self) -> Path:
        return self.path / f"{LEADERBOARD}.md"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def records(self) -> Iterator[Path]:
        """Every `<defense>/<name>.json` of the grid, sorted (cells, certificates, diagnostics,
        and whatever else lies there: readers check what they read)."""
        return iter(sorted(self.path.glob("*/*.json")))

    def _inside(self, path: Path) -> Path:
        if not path.resolve().is_relative_to(self.path.resolve()):
            raise RBError(f"{path} lies outside the results folder {self.path}")
        return path


def _checked(name: str) -> str:
    if not _CELL.fullmatch(name) or ".." in name:
        raise RBError(f"{name!a} cannot name a result file: letters, digits and . _ @ = - only")
    return name


def adv_path(cell_path: Path) -> Path:
    """The sibling file holding a cell's verified adversarial inputs (clean x where unattacked)."""
    return cell_path.with_name(cell_path.stem + ".adv.safetensors")


def shard_dir(cell_path: Path) -> Path:
    """Where a cell's finished shards wait until the cell is whole (hidden from the board)."""
    return cell_path.parent / ".shards" / cell_path.stem


def is_certificate(path: Path) -> bool:
    """Certificate files sit beside the cells; cell readers skip them by name."""
    return path.stem == CERTIFICATE or path.stem.startswith(CERTIFICATE + "@")


def is_cell(path: Path) -> bool:
    """Attack cells, not the certificates and model diagnostics that lie beside them."""
    return not is_certificate(path) and path.stem != DIAGNOSTICS
