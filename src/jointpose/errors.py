"""The one error type for user mistakes: bad files, bad arguments, bad data.

The CLI catches :class:`JointposeError` only and prints its message on one line;
anything else is a bug and crashes with a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class JointposeError(Exception):
    """A user-facing error whose message names the file, key or argument at fault.

    Args:
        message: one line. With ``fields``, a :meth:`str.format` template in which ``{0}``,
            ``{1}``, ... stand for the configuration fields at fault and ``{name}`` for
            ``values``; the message names each field as a Python user knows it
            (``epochs``, ``weights.rom``), and :meth:`naming` lets the CLI write its flag.
        fields: the field names the template refers to by position.
        values: the template's other placeholders.
    """

    def __init__(self, message: str, *, fields: Sequence[str] = (), **values: Any) -> None:
        self.fields = tuple(fields)
        self.template = message if self.fields or values else None
        self.values = values
        super().__init__(message.format(*self.fields, **values) if self.template is not None else message)

    def naming(self, names: Mapping[str, str]) -> str:
        """The message with each field written as ``names[field]`` (as itself when absent)."""
        if self.template is None:
            return str(self)
        return self.template.format(*(names.get(field, field) for field in self.fields), **self.values)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none: how an error
    from a library (torch, zipfile) is quoted inside a one-line :class:`JointposeError`."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


class JointposeWarning(UserWarning):
    """Something in the input was repaired (trimmed, interpolated, padded); the message says what."""
