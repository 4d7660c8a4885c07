"""The one error type for user mistakes: bad files, bad arguments, bad data.

The CLI catches :class:`JointposeError` only and prints its message on one line;
anything else is a bug and crashes with a traceback.
"""


class JointposeError(Exception):
    """A user-facing error whose message names the file, key or argument at fault."""


class JointposeWarning(UserWarning):
    """Something in the input was repaired (trimmed, interpolated, padded); the message says what."""
