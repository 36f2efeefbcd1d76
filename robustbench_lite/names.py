"""What a name may be: plugin, dataset and model names are identifiers (they name folders and
files, and are printed), and fixed vocabularies are string enums, not bare literals."""

from __future__ import annotations

import re
from enum import Enum

#: Letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = (
    "a name is letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)"
)
#: The dataset a command or `evaluate()` uses when none is named (here, not in the registry, so
#: that `rb --help` and the Python API's signatures need no torch).
DEFAULT_DATASET = "mnist-5k"


class StrEnum(str, Enum):
    """A string enum whose members are their values wherever a string is expected (JSON, config
    hashes, f-strings, comparisons with plain strings), on every Python the suite supports."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)
