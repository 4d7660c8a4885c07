"""The one error type for user mistakes: bad files, bad arguments, bad data.

The CLI catches :class:`JointposeError` only and prints its message on one line;
anything else is a bug and crashes with a traceback.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

# At most 3 levels and 6 items per container: a value a pickle builds from shared parts (a
# tuple holding one tuple twice, 40 deep, from a 500-byte file) is written in bounded time.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 3, 60, 60, 40
_BRIEF.maxtuple = _BRIEF.maxlist = _BRIEF.maxdict = _BRIEF.maxset = _BRIEF.maxfrozenset = 6
_CONTAINERS = (list, tuple, dict, set, frozenset)


def brief(value: Any) -> str:
    """``repr(value)``, cut to a few levels and items: how a value read from a file is quoted."""
    return _BRIEF.repr(value)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's or numpy's ``MemoryError``, or
    torch's (a ``RuntimeError`` on the CPU, ``torch.OutOfMemoryError`` on CUDA)."""
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "can't allocate memory" in text
        or "out of memory" in text
    )


def listed(names: Iterable[Any], most: int = 6) -> str:
    """The first ``most`` of ``names`` read from a file, each cut to 60 characters, and how
    many more: how a message lists keys, subjects or actions."""
    names = [str(name) for name in names]
    shown = [name if len(name) <= 60 else name[:57] + "..." for name in names[:most]]
    return ", ".join(shown) + (f" and {len(names) - most} more" if len(names) > most else "")


class _Brief:
    """A container in a message template, formatted by :func:`brief` whatever the format spec
    or conversion (``{value}``, ``{value!r}`` and ``{value!s}`` alike)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return brief(self.value)

    def __repr__(self) -> str:
        return brief(self.value)


class _Named:
    """A message that may name configuration fields: :class:`JointposeError`'s and
    :class:`JointposeWarning`'s ``message``, ``fields`` and ``values``."""

    def _template(self, message: str, fields: Sequence[str], values: dict[str, Any]) -> str:
        """Keep the template and return the message as a Python user reads it."""
        self.fields = tuple(fields)
        self.template = message if self.fields or values else None
        self.values = {k: _Brief(v) if isinstance(v, _CONTAINERS) else v for k, v in values.items()}
        return message.format(*self.fields, **self.values) if self.template is not None else message

    def naming(self, names: Mapping[str, str]) -> str:
        """The message with each field written as ``names[field]`` (as itself when absent)."""
        if self.template is None:
            return str(self)
        return self.template.format(*(names.get(field, field) for field in self.fields), **self.values)


class JointposeError(_Named, Exception):
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
        super().__init__(self._template(message, fields, values))

    def renaming(self, old: str, new: str) -> JointposeError:
        """This error with the text ``old`` (a file's path) written as ``new`` (what the user
        gave for it) in its message and its values."""
        if self.template is None:
            return JointposeError(str(self).replace(old, new))
        values = {k: str(v).replace(old, new) if isinstance(v, (str, PurePath)) else v for k, v in self.values.items()}
        return JointposeError(self.template.replace(old, new), fields=self.fields, **values)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none: how an error
    from a library (torch, zipfile) is quoted inside a one-line :class:`JointposeError`."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


class JointposeWarning(_Named, UserWarning):
    """Something in the input was repaired (trimmed, interpolated, padded), or a setting will not
    do what it seems to; the message says what. ``fields`` and ``values`` as
    :class:`JointposeError`'s: the CLI writes each field as its flag."""

    def __init__(self, message: str, *, fields: Sequence[str] = (), **values: Any) -> None:
        super().__init__(self._template(message, fields, values))
