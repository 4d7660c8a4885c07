"""The one error type for user mistakes: bad files, bad arguments, bad data.

The CLI catches :class:`JointposeError` only and prints its message on one line;
anything else is a bug and crashes with a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class JointposeError(Exception):
    """A user-facing error whose message names the file, key or argument at fault.

    Args:
        message: one line; a configuration field at fault is named as the field
            (``epochs``, ``weights.rom``), as a Python user knows it.
        fields: the field names the message mentions; the CLI writes each one as its flag.
    """

    def __init__(self, message: str, *, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class JointposeWarning(UserWarning):
    """Something in the input was repaired (trimmed, interpolated, padded); the message says what."""
