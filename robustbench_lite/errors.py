"""The one exception type whose message is shown to users as a single line (exit code 2), and the
guard that turns whatever plugin or model code raises (SystemExit and KeyboardInterrupt included)
into one: an exit that names its cause, never 0 and never a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


class RBError(Exception):
    """A user-facing error: bad input, missing data, corrupt files. No traceback is shown."""


#: The signal that stopped this process (SIGINT or SIGTERM through `stop_on_signals`), if any: a
#: KeyboardInterrupt with none recorded was raised by code, not by a user, and is a failure.
_stopped_by: list[int] = []


def stopped_by() -> int | None:
    """The signal number a user stopped the run with, or None."""
    return _stopped_by[-1] if _stopped_by else None


def is_stop(exc: BaseException) -> bool:
    """Whether `exc` is a user's stop (Ctrl-C, SIGTERM), which ends the run and keeps its work."""
    return isinstance(exc, KeyboardInterrupt) and stopped_by() is not None


def _on_signal(signum: int, frame: Any) -> None:
    _stopped_by.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGINT and SIGTERM are recorded as a user's stop and raise KeyboardInterrupt (main
    thread only; elsewhere a no-op). The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _stopped_by.clear()
    for s in previous:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message` (SystemExit(0) and bare exceptions included)."""
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r})"
    return f"{name}: {text[0]}" if text else name


def debug() -> bool:
    """RB_DEBUG=1 lets a plugin's exception through with its traceback (for plugin authors)."""
    return os.environ.get("RB_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def guarded(what: str | Callable[[], str]) -> Iterator[None]:
    """Run plugin or model code: anything it raises (SystemExit and a KeyboardInterrupt that no
    user sent included) becomes one RBError naming `what`; a user's stop passes through."""
    try:
        yield
    except RBError:
        raise
    except BaseException as exc:
        if is_stop(exc) or debug():
            raise
        name = what() if callable(what) else what
        raise RBError(f"{name} failed: {one_line(exc)}") from None
