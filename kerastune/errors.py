"""User-facing errors.

A `KerastuneError` is bad input the user can fix (a missing column, an unknown
config key, a path that does not exist). The CLI prints its message on one
line and exits non-zero, without a traceback.
"""


class KerastuneError(Exception):
    """A problem with the user's input, explained in one line."""


class Diverged(KerastuneError):
    """Training produced a loss that is not finite: the run stops (exit status 3), its last good
    checkpoint kept."""

    exit_status = 3
