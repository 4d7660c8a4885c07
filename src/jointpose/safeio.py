"""Safe reading, atomic writing, and the resource limits every reader enforces.

Reading: VideoPose3D's data files store dicts inside 0-d object arrays, which numpy can
only read with ``allow_pickle=True`` - and a pickle can run arbitrary code. Here object
arrays are unpickled by :class:`RestrictedUnpickler`, which admits numpy arrays, dtypes and
scalars and the builtin containers (dict, list, tuple, str, bytes, int, float, bool, None)
and refuses every other global, and a dtype unless built and set as numpy itself pickles one,
so a crafted file raises :class:`JointposeError` and runs nothing. Sizes are checked before
anything is allocated: the archive's declared sizes against :func:`limit` ``("npz_bytes")``,
every array's header shape against the bytes that follow it, and every pickle's memo indices
against ``limit("pickle_memo")``; what a pickle builds is bounded by its own size
(:func:`pickle_budget`), and a training checkpoint's pickle is run the same way, with nothing
built, before torch loads it (:func:`check_checkpoint_pickle`).

Writing: :func:`atomic_write` writes to a temporary file in the target's folder, fsyncs it
and renames it over the target (through a symlink, onto the file it leads to), so a full
disk, a crash or a kill leaves either the old file or the new one complete, never a torn
one, and no folder made for it; :func:`check_outputs` refuses, before any work is done, an
unwritable target, one that is not a regular file, and one that would replace an input or
another output of the same run.

Limits (:data:`LIMITS`) bound what a small hostile file can make jointpose allocate or
compute; each is overridden by the environment variable ``JOINTPOSE_MAX_<NAME>``
(docs/limits.md).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from jointpose.errors import JointposeError, brief, first_line

# name -> (default, what it bounds). Override with JOINTPOSE_MAX_<NAME> (an integer >= 1).
LIMITS: dict[str, tuple[int, str]] = {
    "npz_bytes": (2 * 2**30, "bytes of all arrays of one .npz or .npy file, decompressed"),
    "pickle_memo": (1_000_000, "memo index of a pickled object array (the unpickler allocates 16 bytes per index)"),
    "frames": (1_000_000, "frames in one keypoint, motion or dataset sequence"),
    "fill_gap": (300, "frames in a row without any detection that are filled by interpolation"),
    "resample": (100, "factor between two frame rates when resampling (either way)"),
    "fps": (1000, "frames per second of a dataset, a BVH file or an input (and 1 / it the fewest)"),
    "text_bytes": (2**30, "bytes of one text input: JSON keypoints, a BVH file, a rig mapping, index.csv"),
    "image_px": (100_000, "image width or height in pixels"),
    "video_pixels": (100_000_000, "pixels of one video frame (width x height; 3 bytes each when decoded)"),
    "bvh_joints": (10_000, "joints in one BVH hierarchy, End Sites included"),
    "parameters": (1_000_000_000, "parameters of a model to train (a 2048-channel 243-frame model has 67 million)"),
    "people": (100, "people per frame of a detector's keypoint file that are linked into tracks (the most confident)"),
}


def limit(name: str) -> int:
    """The current value of limit ``name`` (:data:`LIMITS`): ``JOINTPOSE_MAX_<NAME>`` when set, else the default."""
    default, _ = LIMITS[name]
    variable = f"JOINTPOSE_MAX_{name.upper()}"
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise JointposeError(f"{variable} must be an integer >= 1, got {raw!r}") from None
    if value < 1:
        raise JointposeError(f"{variable} must be an integer >= 1, got {raw!r}")
    return value


def check_limit(name: str, value: float, what: str) -> None:
    """Refuse ``value`` above limit ``name``; the message names ``what`` (an argument's name,
    or a description) and how to raise the limit."""
    bound = limit(name)
    if not value <= bound:  # NaN too
        try:
            shown = f"{int(value)}" if value == int(value) and value < 1e15 else f"{float(value):.4g}"
        except (OverflowError, ValueError):  # inf or NaN, or an integer beyond any float
            digits = str(int(value)) if isinstance(value, (int, np.integer)) else ""
            shown = f"{digits[0]}.{digits[1:4]}e+{len(digits) - 1}" if digits else str(float(value))
        raise JointposeError(
            "{0}: {shown} exceeds the limit of {bound} (set JOINTPOSE_MAX_{env} to allow more)",
            fields=(what,),
            shown=shown,
            bound=bound,
            env=name.upper(),
        )


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite number (a Python int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except (TypeError, ValueError, OverflowError):
        return False


def check_fps(fps: float, what: str) -> float:
    """A frame rate (frames per second) in [1 / L, L] for L = ``limit("fps")``; errors name
    ``what`` (an argument's name, or a description)."""
    if not (isinstance(fps, (int, float, np.floating)) and is_finite_number(fps) and fps > 0):
        raise JointposeError("{0} must be a positive number of frames per second, got {fps}", fields=(what,), fps=fps)
    bound = limit("fps")
    if not 1.0 / bound <= fps <= bound:
        raise JointposeError(
            "{0}: {fps:.4g} frames per second is outside [{low:g}, {bound}] (set JOINTPOSE_MAX_FPS to allow more)",
            fields=(what,),
            fps=fps,
            low=1 / bound,
            bound=bound,
        )
    return float(fps)


def check_resample(src_fps: float, dst_fps: float, what: str) -> None:
    """Refuse resampling from ``src_fps`` to ``dst_fps`` by a factor beyond ``limit("resample")`` either way."""
    factor = max(src_fps / dst_fps, dst_fps / src_fps)
    check_limit("resample", factor, f"{what}: resampling {src_fps:g} -> {dst_fps:g} fps (factor)")


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
            self.spend(_check_array_bytes(shape, np.dtype(dtype).itemsize, "pickled array"), "a pickled array")
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
                size = _check_array_bytes(state[1], state[2].itemsize, "pickled array")
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
    except _ZIP_READ_ERRORS as exc:
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
    """Bytes a pickle of ``size`` bytes may allocate for arrays and bytes: 16 times its size
    and 64 MiB more, at most ``limit("npz_bytes")`` (numpy's pickles need about their size)."""
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


def _check_array_bytes(shape: Any, itemsize: int, what: str) -> int:
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
        return RestrictedUnpickler(io.BytesIO(data), pickle_budget(len(data)), encoding="latin1").load()
    except (pickle.UnpicklingError, JointposeError):
        raise
    except Exception as exc:  # malformed streams raise many types
        raise pickle.UnpicklingError(f"corrupt pickle ({type(exc).__name__}: {exc})") from None


def load_npz(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` file; object arrays go through the restricted unpickler.

    Returns ``{key: array}`` for every key, or with ``keys`` only for those of them the file
    holds (the others are not decompressed; :func:`npz_keys` lists what it holds). Raises
    :class:`JointposeError` naming the file (and key) when the file is missing, not a zip
    archive, truncated, holds a disallowed pickle, or when the arrays read would exceed
    ``limit("npz_bytes")`` decompressed.
    """
    path = Path(path)
    with _open_npz(path) as archive:
        members = archive.infolist()
        if keys is not None:
            wanted = set(keys)
            members = [m for m in members if _key(m.filename) in wanted]
        check_limit("npz_bytes", sum(m.file_size for m in members), f"{path}: arrays decompressed (bytes)")
        return {_key(m.filename): _read_member(archive, m, path) for m in members}


def npz_keys(path: str | Path) -> list[str]:
    """The keys of an ``.npz`` file, in archive order, from its directory alone (nothing is decompressed)."""
    path = Path(path)
    with _open_npz(path) as archive:
        return [_key(name) for name in archive.namelist()]


def read_text_file(path: str | Path, errors: str = "strict") -> str:
    """The UTF-8 text of a regular file of at most ``limit("text_bytes")``; a folder, FIFO or
    device (read, it would block or never end) is refused, naming the file."""
    path = Path(path)
    _check_input_file(path)
    try:
        check_limit("text_bytes", path.stat().st_size, f"{path}: bytes")
        return path.read_text(encoding="utf-8", errors=errors)
    except OSError as exc:
        raise JointposeError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise JointposeError(f"{path}: not a UTF-8 text file") from None


def _check_input_file(path: Path) -> None:
    """Refuse an input that is missing, or that is there but not a regular file (a folder, FIFO,
    device: read, it would block or never end)."""
    if not path.is_file():
        raise JointposeError(f"{path}: not a regular file" if path.exists() else f"file not found: {path}")


@contextmanager
def _open_npz(path: Path) -> Iterator[zipfile.ZipFile]:
    """``path`` open as a zip archive; a missing, invalid or unreadable file raises :class:`JointposeError`."""
    _check_input_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError) as exc:  # bad directory, method, name
        raise JointposeError(f"{path}: not a valid .npz archive ({first_line(exc)})") from None
    except (OSError, EOFError) as exc:
        raise JointposeError(f"{path}: cannot read ({exc})") from None


def load_npy(path: str | Path) -> np.ndarray:
    """Read a plain (non-object) ``.npy`` array, its header shape checked against the file size first."""
    path = Path(path)
    _check_input_file(path)
    size = path.stat().st_size
    check_limit("npz_bytes", size, f"{path}: bytes")
    try:
        with open(path, "rb") as handle:
            if handle.read(2) == b"PK":
                raise JointposeError(f"{path}: an .npz archive, not an .npy array (rename it to .npz)")
            handle.seek(0)
            return _read_npy(handle, size, str(path), allow_object=False)
    except OSError as exc:
        raise JointposeError(f"{path}: cannot read ({exc.strerror or exc})") from None


# What reading a damaged zip member raises: its directory, compression, CRC or data.
_ZIP_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error)


def _key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> np.ndarray:
    key = _key(member.filename)
    try:
        with archive.open(member) as handle:
            return _read_npy(handle, member.file_size, f"{path}: key {key!r}", allow_object=True)
    except _ZIP_READ_ERRORS as exc:
        raise JointposeError(f"{path}: key {key!r} is corrupt or unreadable ({first_line(exc)})") from None


_CHUNK = 2**18  # bytes read at a time into the array


def _read_npy(handle: IO[bytes], size: int, where: str, *, allow_object: bool) -> np.ndarray:
    """An array from an open ``.npy`` stream of ``size`` bytes (as declared); the header's shape
    must match the bytes that follow, and the data is read into the array alone (one copy)."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except Exception as exc:  # numpy parses the header text: tokenizer, literal and dtype errors of many types
        raise JointposeError(f"{where} is not a valid .npy array ({first_line(exc)})") from None
    follow = size - handle.tell()
    if dtype.hasobject:
        if not allow_object:
            raise JointposeError(f"{where}: holds Python objects, not numbers")
        return _unpickle_array(handle.read(max(follow, 0) + 1), where)
    try:
        expected = _check_array_bytes(shape, dtype.itemsize, where)
    except pickle.UnpicklingError as exc:  # its message names ``where``
        raise JointposeError(str(exc)) from None
    if follow == expected:
        buffer = bytearray(expected)
        view = memoryview(buffer)
        follow = 0
        while follow < expected and (chunk := handle.read(min(_CHUNK, expected - follow))):
            view[follow : follow + len(chunk)] = chunk
            follow += len(chunk)
        follow += len(handle.read(1))  # at the end: nothing more (and a zip member's CRC is checked)
    if follow != expected:
        raise JointposeError(
            f"{where} is truncated or malformed: its header claims shape {shape} "
            f"({expected} bytes) but {follow} bytes follow"
        )
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _unpickle_array(data: bytes, where: str) -> np.ndarray:
    try:
        array = restricted_loads(data)
    except pickle.UnpicklingError as exc:
        raise JointposeError(f"{where}: unsafe or corrupt pickle ({exc})") from None
    except JointposeError as exc:  # a limit
        raise JointposeError(f"{where}: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise JointposeError(f"{where} does not hold an array")
    return array


def check_finite(values: Any, what: str) -> None:
    """Refuse an array (frames, ...) holding NaN or infinity, naming the frames (0-based)."""
    array = np.asarray(values)
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1) if array.ndim else ~np.isfinite(array[None])
    if bad.any():
        raise JointposeError(
            f"{what}: NaN or infinite values in {int(bad.sum())} of {len(bad)} frames "
            f"({frame_ranges(np.flatnonzero(bad))})"
        )


def check_bounded(values: Any, bound: float, what: str, beyond: str) -> None:
    """Refuse an array (frames, ...) holding a value of magnitude above ``bound`` (or NaN),
    naming the frames (0-based); ``beyond`` says what such values are, e.g. "lie more than
    500 image widths off screen"."""
    array = np.asarray(values)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(array.reshape(len(array), -1)) <= bound).all(axis=1)
    if bad.any():
        raise JointposeError(
            f"{what}: {int(bad.sum())} of {len(bad)} frames ({frame_ranges(np.flatnonzero(bad))}) {beyond}"
        )


def frame_ranges(frames: Any, most: int = 5) -> str:
    """Sorted frame numbers as ``"3-5, 9, 12-40"`` (the first ``most`` runs, then how many more)."""
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        return "none"
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    runs = [(int(r[0]), int(r[-1])) for r in np.split(frames, cuts)]
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most])
    return text + (f" and {len(runs) - most} more" if len(runs) > most else "")


# ----------------------------------------------------------------------------- writing

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (same suffix) for a writer to fill; on success it is
    fsynced and renamed over ``path`` - over the file a symlink ``path`` leads to, the link
    kept - on any error removed, with the folders made for it. An existing ``path`` that is
    not a regular file is refused; OSError becomes :class:`JointposeError` naming ``path``."""
    path = Path(path)
    target = _write_target(path, "cannot write")
    created: list[Path] = []
    try:
        created = _make_folders(target.parent)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        _remove_folders(created)
        raise JointposeError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    written = False
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync(tmp)
        os.replace(tmp, target)
        written = True
    except OSError as exc:
        raise JointposeError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        if not written:
            _remove_folders(created)
    fsync_dir(target.parent)


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_args: Any) -> Iterator[IO]:
    """``open(path, mode)`` made atomic with :func:`atomic_path`: the file appears complete or not at all."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_args) as handle:
        yield handle


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write a set of files into; on success each is
    moved into ``folder`` (replacing files of the same names), on any error the set is
    discarded and ``folder`` is left as it was (not there, when it was made for the set)."""
    folder = Path(folder)
    created: list[Path] = []
    try:
        created = _make_folders(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    except OSError as exc:
        _remove_folders(created)
        raise JointposeError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    written = False
    try:
        yield tmp
        files = sorted(p for p in tmp.iterdir() if p.is_file())
        for file in files:
            os.chmod(file, 0o666 & ~_UMASK)
            _fsync(file)
        for file in files:
            os.replace(file, folder / file.name)
        written = True
    except OSError as exc:
        raise JointposeError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    finally:
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()
        if not written:
            _remove_folders(created)
    fsync_dir(folder)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those this call created, outermost first
    (on an error, none stays)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    try:
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:  # made meanwhile by someone else: theirs
                continue
            created.append(new)
    except OSError:
        _remove_folders(created)
        raise
    return created


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` created (innermost first) while they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


_KINDS = (
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _write_target(path: Path, what: str) -> Path:
    """The file that writing ``path`` replaces: ``path``, or the file the symlink ``path`` leads to.
    An existing one that is not a regular file (a folder, device, FIFO, socket) raises
    :class:`JointposeError` ``"{what} {path}: ..."``."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new file (its folder is checked by whoever makes it)
        return target
    except OSError as exc:
        raise JointposeError(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise JointposeError(f"{what} {path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise JointposeError(f"{what} {path}: is {kind}, not a regular file")
    return target


def check_output_path(path: str | Path, what: str) -> Path:
    """Refuse, before any work, an output file that cannot be written: an existing folder,
    device, FIFO or socket, or a place where no file can be created. A symlink is checked
    (and later written) at the file it leads to. Returns ``path`` as a Path."""
    path = Path(path)
    target = _write_target(path, what)
    _check_creatable(target.parent, what, path)
    return path


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Mapping[str, str | Path | Iterable[str | Path] | None] | None = None,
) -> None:
    """Refuse, before any work, outputs that cannot be written (:func:`check_output_path`) or
    that would replace a file the run reads or another output of the same run.

    ``outputs`` maps each flag (or argument name) to its path, ``inputs`` each flag to the
    file it reads or to the files it reads (those of a folder); None means not given. An
    output is refused when it is the same file as an input or another output, also through
    symlinks and hard links; the error names both flags.
    """
    given = {flag: Path(path) for flag, path in outputs.items() if path is not None}
    read = [
        (flag, Path(path))
        for flag, paths in (inputs or {}).items()
        if paths is not None
        for path in ((paths,) if isinstance(paths, (str, Path)) else paths)
    ]
    for flag, path in given.items():
        check_output_path(path, flag)
    seen: dict[str, Path] = {}
    for flag, path in given.items():
        for source, file in read:
            if _same_file(path, file):
                raise JointposeError(
                    f"{flag} {path}: is the same file as {source} {file}, which this run reads; choose another output"
                )
        for other, earlier in seen.items():
            if _same_file(path, earlier):
                raise JointposeError(
                    f"{flag} {path}: is the same file as {other} {earlier}; give each output its own file"
                )
        seen[flag] = path


def _same_file(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file, existing or not (symlinks and hard links included)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_output_folder(folder: str | Path, what: str) -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written in."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise JointposeError(f"{what} {folder}: is a file, not a folder")
    _check_creatable(folder, what, folder)
    return folder


def _check_creatable(folder: Path, what: str, target: Path) -> None:
    """A file can be created in ``folder`` (or in the nearest existing folder above it): try one."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise JointposeError(f"{what} {target}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise JointposeError(f"{what} {target}: cannot write in {existing} ({exc.strerror or exc})") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
