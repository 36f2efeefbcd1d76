"""The one exception type whose message is shown to users as a single line (exit code 2)."""


class RBError(Exception):
    """A user-facing error: bad input, missing data, corrupt files. No traceback is shown."""
