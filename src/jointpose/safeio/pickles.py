"""Pickles read without running code.

VideoPose3D's data files store dicts inside 0-d object arrays, which numpy can only read
with ``allow_pickle=True`` - and a pickle can run arbitrary code. Here object arrays are
unpickled by :class:`RestrictedUnpickler`, which admits numpy arrays, dtypes and scalars and
the builtin containers (dict, list, tuple, str, bytes, int, float, bool, None) and refuses
every other global, and a dtype unless built and set as numpy itself pickles one, so a
crafted file raises :class:`JointposeError` and runs nothing. Every pickle's memo indices
are checked against ``limit("pickle_memo")`` and what it builds is bounded by its own size
(:func:`pickle_budget`); a training checkpoint's pickle is run the same way, with nothing
built, before torch loads it (:func:`check_checkpoint_pickle`).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from jointpose.errors import JointposeError, brief, first_line
from jointpose.safeio.limits import check_limit, limit

# What reading a damaged zip member raises: its directory, compression, CRC or data.
ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error)


# (module, name) pairs a numpy array pickle needs; numpy 1.x and 2.x spell the modules differently.
_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # bytes written by Python 2 / protocol 2 pickles
}


class _BudgetedUnpickler(pickle._Unpickler):  # Python's own unpickler, whose opcodes can be checked
    """Python's unpickler with what a small file can make it do bounded: bytes it allocates
    for arrays and bytes objects count against ``budget`` (:func:`pickle_budget`), however
    often the pickle's memo hands one object to a constructor; a dict key or set item must
    be a plain scalar (hashing a tuple nested in itself twice per level takes time
    exponential in its depth); ``_codecs.encode`` takes latin-1 only (linear time)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], budget: int, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.budget = budget

    def spend(self, size: int, what: str) -> None:
        """Count ``size`` bytes an opcode allocates against the pickle's budget."""
        self.budget -= size
        if self.budget < 0:
            raise pickle.UnpicklingError(f"{what} would take more memory than a pickle of this size holds")

    def _encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        """``_codecs.encode`` as pickles of bytes call it: a str in latin-1."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "latin_1"):
            raise pickle.UnpicklingError("refusing _codecs.encode arguments a pickle of bytes does not use")
        self.spend(len(text), "a pickled bytes object")
        return text.encode("latin-1")

    def load_setitem(self) -> None:
        _check_keys(self.stack[-2:-1])
        super().load_setitem()

    def load_setitems(self) -> None:
        _check_keys(self.stack[::2])  # after a MARK the stack holds the marked items alone
        super().load_setitems()

    def load_dict(self) -> None:
        _check_keys(self.stack[::2])
        super().load_dict()

    def load_additems(self) -> None:
        _check_keys(self.stack)
        super().load_additems()

    def load_frozenset(self) -> None:
        _check_keys(self.stack)
        super().load_frozenset()

    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset


# Bytes of the Python object each of these opcodes makes (CPython's size of the empty
# container, or of a small number or string), counted against the budget: a pickle of
# one-byte EMPTY_SET opcodes would otherwise build 216 bytes per byte of file, unbounded by
# anything but the file's decompressed size.
_OBJECT_BYTES = {
    pickle.EMPTY_SET: 216,
    pickle.FROZENSET: 216,
    pickle.EMPTY_DICT: 64,
    pickle.DICT: 64,
    pickle.EMPTY_LIST: 56,
    pickle.LIST: 56,
    pickle.MARK: 56,  # a new list on the unpickler's own stack of marks
    pickle.TUPLE: 40,
    pickle.TUPLE1: 48,
    pickle.TUPLE2: 56,
    pickle.TUPLE3: 64,
    pickle.BININT: 32,
    pickle.LONG1: 32,
    pickle.BINFLOAT: 24,
    pickle.SHORT_BINUNICODE: 64,
    pickle.BINUNICODE: 64,
    pickle.SHORT_BINBYTES: 40,
}


def _charged(load: Any, size: int) -> Any:
    def charged(self: _BudgetedUnpickler) -> None:
        self.spend(size, "the Python objects it builds")
        load(self)

    return charged


for _opcode, _size in _OBJECT_BYTES.items():
    _BudgetedUnpickler.dispatch[_opcode[0]] = _charged(_BudgetedUnpickler.dispatch[_opcode[0]], _size)


class RestrictedUnpickler(_BudgetedUnpickler):
    """An unpickler that only builds numpy arrays/dtypes and builtin containers."""

    dispatch = dict(_BudgetedUnpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}'")
        found = super().find_class(module, name)
        if name == "_reconstruct":
            return self._reconstruct(found)
        if name == "encode":
            return self._encode
        if name == "_frombuffer":
            return self._frombuffer(found)
        if found is np.ndarray:
            return _NDARRAY
        return _dtype_from_pickle if found is np.dtype else found

    def _reconstruct(self, reconstruct: Any) -> Any:
        """numpy's ``_reconstruct(ndarray, shape, dtype)``, its size checked and counted."""

        def build(subtype: Any, shape: Any, dtype: Any) -> Any:
            if subtype is not _NDARRAY or not isinstance(dtype, (bytes, str, np.dtype)):
                raise pickle.UnpicklingError("refusing _reconstruct arguments numpy does not write")
            self.spend(check_array_bytes(shape, np.dtype(dtype).itemsize, "pickled array"), "a pickled array")
            return reconstruct(np.ndarray, shape, dtype)

        return build

    def _frombuffer(self, frombuffer: Any) -> Any:
        """numpy's ``_frombuffer(buffer, dtype, shape, order)`` (protocol 5), its buffer counted."""

        def build(buffer: Any, *args: Any) -> Any:
            if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)):
                raise pickle.UnpicklingError("refusing _frombuffer arguments numpy does not write")
            self.spend(memoryview(buffer).nbytes, "a pickled array")
            return frombuffer(buffer, *args)

        return build

    def load_build(self) -> None:
        """BUILD (``__setstate__``), a dtype's state checked first: numpy takes it as given, and
        a crafted one makes a dtype whose arrays raise ``RuntimeError`` later, wherever freed;
        an array's state is counted against the budget (one state may fill many arrays)."""
        target, state = self.stack[-2], self.stack[-1]
        if isinstance(target, np.dtype):
            _check_dtype_state(target, state)
        elif isinstance(target, np.ndarray):
            try:
                size = check_array_bytes(state[1], state[2].itemsize, "pickled array")
            except (TypeError, IndexError, AttributeError):
                raise pickle.UnpicklingError("refusing an array state numpy does not write") from None
            self.spend(size, "a pickled array")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


class _Inert:
    """Whatever a checkpoint's pickle builds, in :func:`check_checkpoint_pickle`'s dry run:
    it takes any arguments, state, items and elements and does nothing with them."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        _check_keys((key,))

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _CheckpointScan(_BudgetedUnpickler):
    """Runs a torch checkpoint's pickle with every global and stored tensor an :class:`_Inert`."""

    dispatch = dict(_BudgetedUnpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        return self._encode if (module, name) == ("_codecs", "encode") else _Inert

    def persistent_load(self, pid: Any) -> Any:
        return _Inert()


def check_checkpoint_pickle(path: Path) -> None:
    """Refuse a ``torch.save`` file whose pickle would make torch's own (weights-only) loader
    hash a deeply shared key, run a codec in more than linear time or allocate more than the
    file holds: the pickle is first run here with nothing built (:class:`_CheckpointScan`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            members = [m for m in infos if m.filename.count("/") == 1 and m.filename.endswith("/data.pkl")]
            if len(members) != 1:
                raise JointposeError(f"{path}: not a checkpoint written by torch.save (no single data.pkl)")
            # torch.save stores every record uncompressed, once: a deflated record, or two
            # entries sharing one record, would make torch allocate more than the file holds.
            if any(m.compress_type != zipfile.ZIP_STORED for m in infos):
                raise JointposeError(f"{path}: a compressed record (torch.save writes none)")
            if (
                len({m.header_offset for m in infos}) != len(infos)
                or sum(m.file_size for m in infos) > path.stat().st_size
            ):
                raise JointposeError(f"{path}: records that overlap or exceed the file (torch.save writes none)")
            check_limit("npz_bytes", members[0].file_size, f"{path}: pickle bytes")
            data = archive.read(members[0])
    except ZIP_READ_ERRORS as exc:
        raise JointposeError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
    try:
        check_pickle(data)
        _CheckpointScan(io.BytesIO(data), pickle_budget(len(data)), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise JointposeError(f"{path}: unsafe or corrupt checkpoint ({first_line(exc)})") from None
    except JointposeError as exc:  # a limit
        raise JointposeError(f"{path}: {exc}") from None
    except Exception as exc:  # malformed streams raise many types
        raise JointposeError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {first_line(exc)})") from None


class _NdarrayMarker:
    """``numpy.ndarray`` inside a pickle: accepted only as ``_reconstruct``'s first argument
    (called directly, with a buffer and zero strides, it makes a huge array of a few bytes)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("refusing a direct call of numpy.ndarray")


_NDARRAY = _NdarrayMarker()
_SCALAR_KEYS = (str, bytes, int, float, bool, type(None))


def _check_keys(keys: Iterable[Any]) -> None:
    if not all(isinstance(key, _SCALAR_KEYS) for key in keys):
        raise pickle.UnpicklingError("refusing a dict key or set item that is not a string or a number")


def pickle_budget(size: int) -> int:
    """Bytes a pickle of ``size`` bytes may allocate for arrays, bytes and the Python objects
    it builds: 16 times its size and 64 MiB more, at most ``limit("npz_bytes")`` (numpy's
    pickles need about their size)."""
    return min(16 * size + 2**26, limit("npz_bytes"))


def _dtype_from_pickle(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype(obj, align, copy)`` as numpy pickles it: a type string and two booleans."""
    if not (isinstance(obj, str) and isinstance(align, bool) and isinstance(copy, bool)):
        raise pickle.UnpicklingError(
            f"refusing numpy.dtype arguments numpy does not write: {brief((obj, align, copy))}"
        )
    return np.dtype(obj, align=align, copy=copy)


def _check_dtype_state(dtype: np.dtype, state: Any) -> None:
    """Refuse a pickled dtype's state unless it is the one numpy writes for a plain dtype of
    that kind: the byte order, and for strings and raw bytes the item size, are all it may set
    (a structured or datetime dtype is refused too)."""
    try:
        size = state[5]
        if dtype.itemsize == 0 and dtype.char in "SUV" and isinstance(size, int) and 0 <= size <= limit("npz_bytes"):
            dtype = np.dtype(f"{dtype.char}{size // (4 if dtype.char == 'U' else 1)}")
        expected = (dtype.newbyteorder(state[1]) if state[1] in ("<", ">") else dtype).__reduce__()[2]
        plain = type(state) is tuple and state == expected
    except Exception:  # a state of another shape or type
        plain = False
    if not plain:
        raise pickle.UnpicklingError(
            f"refusing a pickled dtype state numpy does not write for {dtype.str}: {brief(state)}"
        )


def check_array_bytes(shape: Any, itemsize: int, what: str) -> int:
    """Bytes of an array of ``shape`` (exact integers, no overflow), refused above ``limit("npz_bytes")``."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise pickle.UnpicklingError(f"{what}: invalid shape {brief(dims)}")
    size = itemsize
    for d in dims:
        size *= int(d)
    check_limit("npz_bytes", size, f"{what} of shape {dims}: bytes")
    return size


_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


def check_pickle(data: bytes) -> None:
    """Scan a pickle's opcodes without running it: refuse memo indices above ``limit("pickle_memo")``
    and counted strings longer than the data (both would make the C unpickler allocate first)."""
    bound = limit("pickle_memo")
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in _MEMO_OPCODES and int(arg) > bound:
                raise pickle.UnpicklingError(
                    f"memo index {int(arg)} exceeds the limit of {bound} (set JOINTPOSE_MAX_PICKLE_MEMO to allow more)"
                )
    except ValueError as exc:
        raise pickle.UnpicklingError(str(exc).splitlines()[0]) from None


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` after :func:`check_pickle`.

    Every failure - a refused global, a malformed stream, a constructor given the wrong
    arguments - raises ``pickle.UnpicklingError``; a limit raises :class:`JointposeError`.
    """
    check_pickle(data)
    try:
        value = RestrictedUnpickler(io.BytesIO(data), pickle_budget(len(data)), encoding="latin1").load()
    except (pickle.UnpicklingError, JointposeError):
        raise
    except Exception as exc:  # malformed streams raise many types
        raise pickle.UnpicklingError(f"corrupt pickle ({type(exc).__name__}: {exc})") from None
    _check_plain(value)
    return value


# What a loaded pickle may hold besides containers.
_PLAIN = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, np.dtype)


def _check_plain(value: Any) -> None:
    """Refuse (``UnpicklingError``) a loaded value that holds anything but plain data, numpy
    arrays, scalars and dtypes: a stream that stops early, or stores a global in a container,
    leaves one of the unpickler's own callables in the result. Each container is walked once
    (a memo reference can make one hold itself)."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, _PLAIN):
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend(item.flat)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            raise pickle.UnpicklingError(f"refusing a pickle that loads as {type(item).__name__}, not plain data")
