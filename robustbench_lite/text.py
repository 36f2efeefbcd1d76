"""Text that is safe to print: a plugin's name, a hyper-parameter string or an error message may
carry ANSI escapes or other control characters that would rewrite the user's terminal."""

from __future__ import annotations

import re

#: C0 and C1 control characters (ESC of ANSI sequences, BEL, backspace, carriage return ...)
#: and the Unicode bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` safe to print: control characters become '?', newlines and tabs spaces unless
    kept."""
    text = _CONTROL.sub("?", str(text))
    return text if keep_newlines else text.replace("\n", " ").replace("\t", " ")
