"""The layers contract holds, and fails once an import points back up a layer (import-linter,
the contracts in pyproject.toml; `make lint` runs the same)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [LINT or "lint-imports", "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e .[dev])")
def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "robustbench_lite", tree / "robustbench_lite")
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    assert _lint(tree).returncode == 0
    spec = tree / "robustbench_lite" / "protocol" / "spec.py"
    spec.write_text(spec.read_text() + "\nfrom robustbench_lite.report import leaderboard  # up\n")
    broken = _lint(tree)
    assert broken.returncode != 0
    assert "robustbench_lite.protocol is not allowed to import robustbench_lite.report" in (
        broken.stdout
    )
    plugin = tree / "robustbench_lite" / "attacks" / "pgd.py"
    spec.write_text(spec.read_text().replace("from robustbench_lite.report import leaderboard", ""))
    plugin.write_text(plugin.read_text() + "\nfrom robustbench_lite.store import layout  # no\n")
    assert "robustbench_lite.attacks.pgd -> robustbench_lite.store.layout" in _lint(tree).stdout
